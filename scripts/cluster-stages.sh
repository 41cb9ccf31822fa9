#!/bin/bash
# Where a replicated order's time goes, stage by stage, in each process.
#
# Usage: scripts/cluster-stages.sh BINARY DIR [bench cluster options, e.g. --cpus ...]
#   BINARY  a release build of twinsite (target/release/twinsite)
#   DIR     the journal directory (on the disk under test)
#
# Runs `twinsite bench cluster` (8,000 round trips at one order in flight, no failovers) with
# TWINSITE_STAGES set, so the bench's three node processes each write their stage timeline
# (crates/cluster/src/stages.rs), then prints the median time of every stage from the primary
# reading the order (scripts/cluster-stages.py). The marks cost a few percent of the round
# trip; compare runs with each other. KEEP=1 keeps the timeline files next to DIR.
set -euo pipefail
BIN=$1
DIR=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$DIR" "$DIR".stages.*
TWINSITE_STAGES="$DIR.stages" "$BIN" bench cluster --dir "$DIR" --orders 8000 --warmup 300 \
  --sessions 1 --per-session 1 --window 1 --rto-runs 0 --fsyncs 300 --floor-orders 0 "$@" \
  > "$DIR.out" 2> "$DIR.err"
grep -E "fdatasync p50|round trip" "$DIR.err"
python3 "$HERE/cluster-stages.py" "$DIR.stages"
rm -rf "$DIR" "$DIR.out" "$DIR.err"
[ "${KEEP:-0}" = 1 ] || rm -f "$DIR".stages.*
