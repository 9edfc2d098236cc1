#!/bin/sh
# Builds bench/qemu/out/initramfs.cpio.gz: the static guest program as /init,
# /dev/console and /proc. Needs gcc (static libc) and cpio; run as root (mknod).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/out"
stage="$out/root"
rm -rf "$stage"
mkdir -p "$stage/dev" "$stage/proc"
gcc -O2 -static -Wall -Wextra -o "$stage/init" "$here/guest.c"
mknod "$stage/dev/console" c 5 1
(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1 > "$out/initramfs.cpio.gz")
echo "$out/initramfs.cpio.gz"
