#!/usr/bin/env bash
# Instructions per warm invocation and per telemetry line of `fnbox serve`, counted by
# valgrind's callgrind: repeatable on a busy machine, where wall-clock profiles are not.
#
#   crates/fnbox-bench/scripts/callgrind.sh [BIN_DIR]   # default target/release
#
# Warm path: rust-hello behind `fnbox serve` (max_instances 1), 200 warm-up calls, counters
# zeroed, then N=1000 sequential calls from a Python http.client; prints Ir / call and keeps
# the dump (callgrind_annotate it). Telemetry: the bench's emit-runtime prints 100,000
# `[Function]` lines with the bench's no-op listener subscribed; prints Ir / line.
# Needs valgrind (Debian: valgrind) and python3. Only the fnbox process is counted.
set -euo pipefail
# Containment off: under valgrind the contained spawn fails ("cannot start /bin/bash:
# Operation not permitted"); what is counted is fnbox's own work per call, which it does not change.
export FNBOX_CONTAINMENT=off
root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${1:-$root/target/release}
out=${CALLGRIND_OUT:-$root/target/callgrind}
calls=${CALLS:-1000}
lines=${LINES:-100000}
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# $1 tag, $2 package dir; starts fnbox serve under callgrind, sets $addr.
start() {
  printf 'functions:\n  - path: %s\n    max_instances: 1\n' "$2" >"$tmp/$1.yaml"
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.%p" \
    "$bin/fnbox" serve --config "$tmp/$1.yaml" --listen 127.0.0.1:0 --no-ui \
    --data-dir "$tmp/$1.data" >"$tmp/$1.out" 2>"$tmp/$1.err" &
  pids+=($!)
  cg_pid=$!
  for _ in $(seq 600); do
    addr=$(grep -o 'listening on http://[0-9.:]*' "$tmp/$1.out" 2>/dev/null | sed 's#.*http://##' || true)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  echo "fnbox serve ($1) did not start; stderr:" >&2; tail -20 "$tmp/$1.err" >&2; exit 1
}

# $1 addr, $2 path, $3 body, $4 count: sequential calls.
calls() {
  python3 - "$@" <<'PY'
import http.client, sys
host, port = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port))
for _ in range(int(sys.argv[4])):
    c.request("POST", sys.argv[2], sys.argv[3].encode(), {"Content-Type": "application/json"})
    r = c.getresponse(); d = r.read()
    if r.status != 200: sys.exit(f"HTTP {r.status}: {d[:200]!r}")
PY
}

# $1 dump file: total Ir.
total() { grep -m1 '^summary:' "$1" | awk '{print $2}'; }

mkdir -p "$tmp/hello"
printf 'func_name: cg-hello\nruntime: Custom\nmemory_size: 128\ntimeout: 10\n' >"$tmp/hello/function.yaml"
printf '#!/bin/bash\nexec %q\n' "$bin/rust-hello" >"$tmp/hello/bootstrap"
chmod +x "$tmp/hello/bootstrap"
start warm "$tmp/hello"
path=/v2/cg/fgs/functions/default:cg-hello/invocations
calls "$addr" "$path" '{}' 200
callgrind_control -z "$cg_pid" >/dev/null
calls "$addr" "$path" '{}' "$calls"
callgrind_control -d warm "$cg_pid" >/dev/null
dump=$(ls -t "$out"/warm."$cg_pid"* | head -1)
ir=$(total "$dump")
echo "warm invoke: $ir Ir for $calls calls = $((ir / calls)) Ir per invocation ($dump)"

mkdir -p "$tmp/emit/extension"
printf 'func_name: cg-emit\nruntime: Custom\nmemory_size: 128\ntimeout: 300\n' >"$tmp/emit/function.yaml"
printf '#!/bin/bash\nexec %q emit-runtime\n' "$bin/fnbox-bench" >"$tmp/emit/bootstrap"
printf '#!/bin/bash\nexec %q listener --out %q "$0"\n' "$bin/fnbox-bench" "$tmp/emit.count" >"$tmp/emit/extension/extensionBench.sh"
chmod +x "$tmp/emit/bootstrap" "$tmp/emit/extension/extensionBench.sh"
start emit "$tmp/emit"
path=/v2/cg/fgs/functions/default:cg-emit/invocations
calls "$addr" "$path" '{"lines":0}' 1
sleep 1
callgrind_control -z "$cg_pid" >/dev/null
calls "$addr" "$path" "{\"lines\":$lines}" 1
for _ in $(seq 600); do
  read -r f _ d _ <"$tmp/emit.count" 2>/dev/null || true
  [ "$(( ${f:-0} + ${d:-0} ))" -ge "$lines" ] && break
  sleep 0.1
done
callgrind_control -d emit "$cg_pid" >/dev/null
dump=$(ls -t "$out"/emit."$cg_pid"* | head -1)
ir=$(total "$dump")
echo "telemetry burst: $ir Ir for $lines lines = $((ir / lines)) Ir per line (delivered ${f:-?}, dropped ${d:-?}) ($dump)"
