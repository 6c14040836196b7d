#!/usr/bin/env bash
# Regenerates the results table of BENCHMARKS.md: builds what it needs, runs every comparison
# (Rust, C, Python, footprint) with its baseline in the same run, and rewrites the part of
# BENCHMARKS.md between its results markers.
#
#   benches/run.sh            # the full run (a few minutes of building from a clean clone,
#                             # then about two minutes of measuring)
#   benches/run.sh --quick    # shorter measurements, rough numbers (a smoke test)
#
# Needs: cargo, cc, make, python3; installs libcurl4-openssl-dev, time, binutils, golang-go
# and golang-golang-x-oauth2-dev with apt-get, and `requests` with pip, when they are
# missing. Nothing here fails on a missed target: the table says so.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=
[ "${1:-}" = "--quick" ] && QUICK=--quick
OUT=$ROOT/target/bench-c
RESULTS=$ROOT/target/bench-results.jsonl
export CARGO_TERM_COLOR=never

step() { printf '\n== %s\n' "$*" >&2; }

step "tools"
need=()
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] || need+=(libcurl4-openssl-dev)
[ -x /usr/bin/time ] || need+=(time)
command -v strip >/dev/null || need+=(binutils)
command -v cc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
# The Go baseline of row 3: golang.org/x/oauth2, as Debian packages it (GOPATH mode).
command -v go >/dev/null || need+=(golang-go)
[ -d /usr/share/gocode/src/golang.org/x/oauth2 ] || need+=(golang-golang-x-oauth2-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -c 'import requests' 2>/dev/null || python3 -m pip install -q requests

step "build: Rust benches (release, with the sandbox feature)"
COMPARE=$(cargo bench -p lwolf-auth --bench compare --no-run --message-format=json |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-message":
        print(m["message"].get("rendered", ""), file=sys.stderr, end="")
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "compare" and m.get("executable"):
        print(m["executable"])')
[ -x "$COMPARE" ] || { echo "could not build the compare bench" >&2; exit 1; }

# After the bench build, so that the shipped library (no features) is the one measured.
step "build: liblwolf_auth.so / .a (release, no features)"
cargo build --release -p lwolf-auth-ffi

step "build: the Go baseline (benches/go/stall.go)"
mkdir -p "$OUT"
GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE="$OUT/go-cache" GOFLAGS= \
  go build -o "$OUT/go-stall" benches/go/stall.go
export LWOLF_BENCH_GO_STALL=$OUT/go-stall

step "build: C examples and C benches"
make -s -C examples-c BUILDDIR="$OUT/examples" dynamic static
mkdir -p "$OUT"
CFLAGS_BENCH=(-std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -g -pthread -I"$ROOT/include")
LINK_LWOLF=(-L"$ROOT/target/release" -llwolf_auth -Wl,-rpath,"$ROOT/target/release")
cc "${CFLAGS_BENCH[@]}" benches/c/hot_path.c -o "$OUT/hot_path" "${LINK_LWOLF[@]}"
cc "${CFLAGS_BENCH[@]}" benches/c/curl_throughput.c -o "$OUT/curl_throughput" "${LINK_LWOLF[@]}" -lcurl
cc "${CFLAGS_BENCH[@]}" benches/c/curl_requests.c -o "$OUT/curl_requests" "${LINK_LWOLF[@]}" -lcurl
cc "${CFLAGS_BENCH[@]}" benches/c/threads_curl.c -o "$OUT/threads_curl" -lcurl

# Servers for the C and Python benches, stopped on exit (and by themselves after 20 min).
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start_server() { # FILE [--sandbox]
  "$COMPARE" serve --max-seconds 1200 "${@:2}" >"$1" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q '^$' "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "server did not start" >&2
  exit 1
}
with_env() { # FILE CMD...: runs CMD with the LWOLF_* settings in FILE (5 minutes at most)
  env $(grep '^LWOLF_' "$1") timeout 300 "${@:2}"
}
start_server "$OUT/fast.env"
start_server "$OUT/sandbox.env" --sandbox

LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
: >"$RESULTS"

step "1-4 (Rust): hot path, cold-start storm, refresh stall, throughput"
timeout 600 "$COMPARE" $QUICK --out "$RESULTS"

step "1 (C): lwolf_client_token() vs a pthread_mutex cache"
with_env "$OUT/fast.env" "$OUT/hot_path" $QUICK >>"$RESULTS"

step "4 (C): lwolf_client_request() vs libcurl"
with_env "$OUT/fast.env" "$OUT/curl_throughput" $QUICK >>"$RESULTS"

step "4 (C): lwolf_client_send() with headers and a query, and a streamed download, vs libcurl"
with_env "$OUT/fast.env" "$OUT/curl_requests" $QUICK >>"$RESULTS"

step "4 (Python): ctypes module vs requests.Session"
with_env "$OUT/fast.env" env LWOLF_AUTH_LIB="$ROOT/target/release/liblwolf_auth.so" \
  python3 benches/python/throughput.py $QUICK >>"$RESULTS"

step "8 (Node, Go): the cached token read vs a variable"
[ -d bindings/node/node_modules/koffi ] || (cd bindings/node && npm ci --no-audit --no-fund --loglevel=error)
with_env "$OUT/fast.env" node benches/node/token.js $QUICK >>"$RESULTS"
BENCHTIME=2s
[ -n "$QUICK" ] && BENCHTIME=200ms
# Benchmarks only (-run '^$'): the tests' sandbox is not started.
(cd bindings/go && with_env "$OUT/fast.env" env \
  CGO_LDFLAGS="-L$ROOT/target/release -Wl,-rpath,$ROOT/target/release" GOPROXY=off \
  GOCACHE="$OUT/go-cache" go test -run '^$' -bench . -benchtime "$BENCHTIME" ./...) |
  python3 benches/go/bench_row.py >>"$RESULTS"

step "5: footprint"
with_env "$OUT/sandbox.env" python3 benches/footprint.py "$ROOT" "$OUT/examples" "$OUT/threads_curl" $QUICK >>"$RESULTS"

step "6: the shared on-disk cache: 20 cold lwolf processes"
cargo build --release -p lwolf-cli
with_env "$OUT/sandbox.env" python3 benches/shared_cache.py "$ROOT/target/release/lwolf" $QUICK >>"$RESULTS"

step "9: the fleet cache: 100 cold lwolf processes over 5 hosts, with and without cache_url"
command -v redis-server >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}
with_env "$OUT/sandbox.env" python3 benches/fleet.py "$ROOT/target/release/lwolf" \
  "$ROOT/target/release/liblwolf_auth.so" $QUICK >>"$RESULTS"

step "windows: the DLL under Wine against the Linux library"
cargo xtask windows >&2
python3 benches/windows.py "$OUT/fast.env" $QUICK >>"$RESULTS"

step "12: lwolf agent's proxy against nginx, and its socket against its sink file"
cargo build --release -p lwolf-cli
python3 benches/agent.py "$OUT/fast.env" "$ROOT/target/release/lwolf" "$COMPARE" $QUICK >>"$RESULTS"

step "packages: the release artifacts' sizes, and installing one to a first token vs from source"
cargo xtask dist >&2
python3 benches/packages.py $QUICK >>"$RESULTS"

LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)
step "report"
BENCH_LOAD="$LOAD_BEFORE / $LOAD_AFTER" BENCH_QUICK=$QUICK python3 benches/report.py "$RESULTS" BENCHMARKS.md
