#!/usr/bin/env bash
# Side-by-side: the ORIGINAL NVFlare PipeHandler (Python, nvflare 2.8.3, MemoryPipe, read_interval
# 1 ms) against peerpipe's Rust driver (`cargo run --release --example rtt -- --transport memory`).
#
# Usage: bench/compare.sh [COUNT [PAYLOAD_BYTES]]      (defaults 2000 and 64; runnable from any cwd)
# Env:   THREADS (sender threads of the Python throughput phase, default 8)
#        PYTHON  (interpreter used to create bench/.venv, default python3)
#
# The first run creates bench/.venv (gitignored) and installs nvflare==2.8.3 into it (~20 s).
set -euo pipefail

COUNT="${1:-2000}"
PAYLOAD="${2:-64}"
THREADS="${THREADS:-8}"
PYTHON="${PYTHON:-python3}"

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
VENV="$BENCH_DIR/.venv"

case "$COUNT$PAYLOAD$THREADS" in
  *[!0-9]*) echo "compare.sh: COUNT, PAYLOAD and THREADS must be non-negative integers" >&2; exit 2 ;;
esac

# --- the Python original -------------------------------------------------------------------------
if ! "$VENV/bin/python" -c 'import nvflare, sys; sys.exit(nvflare.__version__ != "2.8.3")' 2>/dev/null; then
  echo "compare.sh: creating $VENV with nvflare==2.8.3 ..." >&2
  t0=$(date +%s)
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check nvflare==2.8.3
  echo "compare.sh: venv ready in $(( $(date +%s) - t0 )) s" >&2
fi

PY_CMD=("$VENV/bin/python" "$BENCH_DIR/nvflare_rtt.py" --count "$COUNT" --payload "$PAYLOAD" --threads "$THREADS")
RS_CMD=(cargo run --quiet --release --example rtt -- --transport memory --count "$COUNT" --payload "$PAYLOAD")

echo "load before: $(uptime)"
echo "python: ${PY_CMD[*]}"
PY_LINE="$("${PY_CMD[@]}" | tail -n 1)"
echo "$PY_LINE"

# --- our Rust driver -----------------------------------------------------------------------------
# Look for an example target named `rtt` anywhere in the workspace before trying to run it.
has_rtt_example() {
  (cd "$ROOT" && cargo metadata --no-deps --format-version 1 2>/dev/null) | "$PYTHON" -c '
import json, sys
meta = json.load(sys.stdin)
sys.exit(0 if any(t["name"] == "rtt" and "example" in t["kind"]
                  for p in meta["packages"] for t in p["targets"]) else 1)'
}

RS_LINE=""
if ! command -v cargo >/dev/null 2>&1; then
  echo "rust:   SKIPPED: cargo not found on PATH"
elif ! has_rtt_example; then
  echo "rust:   SKIPPED: the workspace has no example named 'rtt' yet (expected: cargo run --release --example rtt)"
else
  echo "rust:   (cd $ROOT && ${RS_CMD[*]})"
  RS_LINE="$(cd "$ROOT" && "${RS_CMD[@]}" | tail -n 1)"
  echo "$RS_LINE"
fi
echo "load after:  $(uptime)"

# --- ratios --------------------------------------------------------------------------------------
field() { # field NAME LINE -> value of NAME=value in LINE, or empty
  local kv
  for kv in $2; do
    if [[ "$kv" == "$1="* ]]; then echo "${kv#*=}"; return; fi
  done
}

if [[ -n "$RS_LINE" ]]; then
  py_p50="$(field rtt_p50_us "$PY_LINE")"; rs_p50="$(field rtt_p50_us "$RS_LINE")"
  py_mps="$(field msgs_per_s "$PY_LINE")"; rs_mps="$(field msgs_per_s "$RS_LINE")"
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.1f", a / b }'; }
  echo "ratio rtt_p50 python/rust = $(ratio "$py_p50" "$rs_p50")x   (python ${py_p50} us / rust ${rs_p50} us)"
  echo "ratio msgs_per_s rust/python = $(ratio "$rs_mps" "$py_mps")x   (rust ${rs_mps} / python ${py_mps})"
else
  echo "ratios: n/a (no Rust result)"
fi
