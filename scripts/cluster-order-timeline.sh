#!/bin/bash
# Where a replicated order's round trip goes: a scheduler trace of the bench and the three
# node processes, cut into one cycle per order, with the median time of each milestone.
#
# Usage: scripts/cluster-order-timeline.sh BINARY DIR [bench cluster options, e.g. --cpus ...]
#   BINARY  a release build of twinsite (target/release/twinsite)
#   DIR     the journal directory (on the disk under test)
#
# Runs `twinsite bench cluster` (8,000 round trips at one order in flight), records
# `perf record -a` of sched_switch, sched_wakeup and fdatasync entry/exit for 1 s of the
# round-trip phase, and prints (scripts/cluster-order-timeline.py) three example cycles and
# the median offset, from the bench being woken by an execution report, of: the next order
# leaving the bench, each node being woken and run, and each node's fdatasync entry and exit.
# The trace costs some latency of its own; compare runs with each other, not with the
# bench's untraced figures. Needs `perf` and permission for system-wide tracing.
set -euo pipefail
BIN=$1
DIR=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$DIR"
"$BIN" bench cluster --dir "$DIR" --orders 8000 --rto-runs 1 --floor-orders 0 "$@" > "$DIR.out" 2> "$DIR.err" &
until grep -q "fdatasync p50" "$DIR.err" 2>/dev/null; do sleep 0.05; done
# The nodes are up and the round trips running by then.
sleep 1.5
for r in primary backup witness; do
  echo "$r $(pgrep -f "role $r --config $DIR/")"
done > "$DIR.pids"
echo "bench $(pgrep -f "bench cluster --dir $DIR")" >> "$DIR.pids"
perf record -q -a -o "$DIR.perf" -e sched:sched_switch,sched:sched_wakeup \
  -e syscalls:sys_enter_fdatasync,syscalls:sys_exit_fdatasync -- sleep 1
wait
grep -E "fdatasync p50|round trip" "$DIR.err"
perf script -i "$DIR.perf" -F tid,cpu,time,event,trace 2> /dev/null > "$DIR.trace"
python3 "$HERE/cluster-order-timeline.py" "$DIR.pids" "$DIR.trace" 3
# KEEP=1 keeps the trace and the pid list next to DIR.
rm -rf "$DIR" "$DIR.out" "$DIR.err" "$DIR.perf"
[ "${KEEP:-0}" = 1 ] || rm -f "$DIR.trace" "$DIR.pids"
