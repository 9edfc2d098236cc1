#!/bin/sh
# The rows of BENCHMARKS.md "QEMU 7.2 measured on this machine", group by group:
#   sh bench/qemu/rows.sh a|b|c|d RESULTS.jsonl
# Every run takes the shared lock (one benchmark at a time on this machine).
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=$2
run() {
  echo "$(date +%T) $*" >&2
  flock /tmp/ferry-heavy.lock timeout 900 node "$here/run.mjs" --out "$out" "$@" || echo "$(date +%T) FAILED: $*" >&2
}
S512='--guest sweep,512,3'
case $1 in
a)
  for dl in 30 300; do
    run $S512 --link veth --param downtime-limit=$dl --cancel-after 60 --label "a plain dl$dl"
    run $S512 --link veth --param downtime-limit=$dl --caps auto-converge --cancel-after 400 --label "a auto-converge dl$dl"
    run $S512 --link veth --param downtime-limit=$dl --caps postcopy-ram --postcopy-after 1000 --label "a postcopy dl$dl"
    run $S512 --link veth --param downtime-limit=$dl --caps xbzrle --param xbzrle-cache-size=536870912 --cancel-after 120 --label "a xbzrle dl$dl"
  done ;;
b)
  R='--guest random,2048 --param downtime-limit=300'
  run $R --label "b plain"
  run $R --caps multifd --param multifd-channels=2 --label "b multifd 2"
  run $R --caps multifd --param multifd-channels=4 --label "b multifd 4"
  run $R --caps multifd --param multifd-channels=2 --param multifd-compression=zstd --label "b multifd 2 zstd"
  run $R --dst-prealloc --label "b plain, destination -mem-prealloc"
  run $R --caps multifd --param multifd-channels=4 --dst-prealloc --label "b multifd 4, destination -mem-prealloc" ;;
c)
  run --guest zeroed,8192 --param downtime-limit=300 --label "c 8G zeroed plain"
  for g in 'sweep,512,3' 'sweep,256,4'; do
    run --guest $g --param downtime-limit=30 --caps auto-converge --cancel-after 400 --label "c $g auto-converge dl30"
    run --guest $g --param downtime-limit=30 --caps postcopy-ram --postcopy-after 1000 --label "c $g postcopy"
  done ;;
d)
  run --guest text,2048 --link veth --param downtime-limit=300 --caps multifd --param multifd-channels=2 --param multifd-compression=zstd --label "d text multifd 2 zstd" ;;
esac
