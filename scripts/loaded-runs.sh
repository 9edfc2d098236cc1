#!/usr/bin/env bash
# Run a test command N times with SPIN busy processes beside it (a loaded
# machine), each run bounded; print a line per run and the counts.
# Usage: scripts/loaded-runs.sh N SPIN LIMIT_S command...
# Example: scripts/loaded-runs.sh 50 3 300 node --test dist/test/migration/peers.test.js
set -u
runs=$1 spin=$2 limit=$3; shift 3
logdir=$(mktemp -d /tmp/ferry-loaded-XXXXXX)
pids=()
for _ in $(seq 1 "$spin"); do node -e 'for(;;){}' & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
pass=0 fail=0 hang=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s%N)
  timeout -k 5 "$limit" "$@" >"$logdir/run-$i.log" 2>&1
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  if [ $rc -eq 0 ]; then pass=$((pass+1)); r=pass; rm -f "$logdir/run-$i.log"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then hang=$((hang+1)); r=HANG
  else fail=$((fail+1)); r=FAIL; fi
  printf 'run %d: %s in %d ms\n' "$i" "$r" "$ms"
done
echo "$runs runs with $spin busy processes: $pass passed, $fail failed, $hang hung (logs of failures: $logdir)"
[ $fail -eq 0 ] && [ $hang -eq 0 ]
