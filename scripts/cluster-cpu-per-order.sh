#!/bin/bash
# CPU time and context switches per replicated order, per process, at one order in flight.
#
# Usage: scripts/cluster-cpu-per-order.sh BINARY DIR
#   BINARY  a release build of twinsite (target/release/twinsite)
#   DIR     the journal directory; on tmpfs (/dev/shm/...) fdatasync costs nothing, so the
#           figures are the software's own cost per order
#
# Runs `twinsite bench cluster` (30,000 round trips, one order in flight), attaches
# `perf stat` (task-clock, context-switches, fdatasync calls) for 3 s to the bench process (B),
# the primary (P), the backup (K) and the witness (W), and divides by the primary's fdatasyncs
# in those 3 s (one per order at one order in flight). Needs `perf` and permission to attach.
set -euo pipefail
BIN=$1
DIR=$2
rm -rf "$DIR"
"$BIN" bench cluster --dir "$DIR" --orders 30000 --warmup 300 --sessions 1 --per-session 1 \
  --window 1 --rto-runs 0 --fsyncs 300 --floor-orders 0 > "$DIR.out" 2>&1 &
BENCH=$!
# The nodes are up and the round trips running by then.
sleep 4
for x in "B:$BENCH" \
         "P:$(pgrep -f "role primary --config $DIR/")" \
         "K:$(pgrep -f "role backup --config $DIR/")" \
         "W:$(pgrep -f "role witness --config $DIR/")"; do
  perf stat -e task-clock,context-switches,syscalls:sys_enter_fdatasync -p "${x#*:}" \
    -o "$DIR.stat.${x%%:*}" -- sleep 3 &
done
wait
grep -E "fdatasync p50|round trip" "$DIR.out"
orders=$(awk '/fdatasync/ {gsub(",", "", $1); print $1}' "$DIR.stat.P")
for n in B P K W; do
  awk -v n=$n -v o="$orders" '
    /task-clock/ {gsub(",", "", $1); tc = $1}
    /context-switches/ {gsub(",", "", $1); cs = $1}
    END {printf "%s: %.0f us cpu/order, %.1f cs/order\n", n, tc * 1000 / o, cs / o}' "$DIR.stat.$n"
done
echo "orders in the 3 s: $orders"
rm -rf "$DIR" "$DIR.out" "$DIR".stat.*
