#!/usr/bin/env bash
# Interop run: twinsite's FIX acceptor (Rust example) against a jspurefix initiator (node).
# Not part of CI: it needs npm and a free local port. Prints INTEROP OK on success.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port="${1:-9880}"
cd "$here"
[ -d node_modules/jspurefix ] || npm install --no-audit --no-fund --ignore-scripts
cargo build -q -p twinsite-fix --example interop_acceptor
log="$(mktemp)"
cargo run -q -p twinsite-fix --example interop_acceptor -- "$port" >"$log" 2>&1 &
acceptor=$!
for _ in $(seq 1 100); do
  grep -q "listening" "$log" && break
  sleep 0.1
done
node initiator.js "$port"
wait "$acceptor"
cat "$log"
grep -q "INTEROP OK" "$log"
