#!/usr/bin/env bash
# Benchmarks the engine's API under many connections: an engine on SQLite;
# test/loadgen opens CONNS connections to it and holds them (TLS handshake
# and one request each, then kept alive; spread over SOURCES client
# addresses of 127.0.0.0/8), while PROBES clients of another address call
# GET /api/v1/clusters for DURATION, each call on a new connection (as a
# health probe does). It prints what the held connections got (200, or the
# refusals 429 TOO_MANY_CONNECTIONS / 503 SERVER_OVERLOADED), how many the
# engine still holds at the end, the probe's latencies (p50, p95, p99) and
# the engine's resident memory (peak).
# docs/benchmarks.md has the results.
#
#   scripts/bench-connections.sh
#   POLYVIRT_BIN=/tmp/old/polyvirt scripts/bench-connections.sh   # another build (before/after)
#
# Environment: CONNS (10000), SOURCES (100), PROBES (4), DURATION (60s),
# HOLD_REQUEST (true; false: the held connections only shake hands and say
# nothing),
# ENGINE_FLAGS (more flags of engine run, e.g. --max-connections 2048),
# POLYVIRT_BIN (default: built into bin/).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

CONNS=${CONNS:-10000}
SOURCES=${SOURCES:-100}
PROBES=${PROBES:-4}
DURATION=${DURATION:-60s}
ENGINE_FLAGS=${ENGINE_FLAGS:-}
HOLD_REQUEST=${HOLD_REQUEST:-true}

mkdir -p bin
if [ -z "${POLYVIRT_BIN:-}" ]; then
	log "building bin/polyvirt"
	CGO_ENABLED=0 go build -o bin/polyvirt ./cmd/polyvirt
	POLYVIRT_BIN=bin/polyvirt
fi
CGO_ENABLED=0 go build -o bin/loadgen ./test/loadgen
# Every held connection is a descriptor on both sides.
ulimit -n $((CONNS * 2 + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/polyvirt-bench-conns.XXXXXX)
engine_pid=
cleanup() {
	[ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$POLYVIRT_BIN" engine init --data-dir "$work/engine" --name localhost --listen "127.0.0.1:$port" --token-file "$work/token" >/dev/null
# shellcheck disable=SC2086
"$POLYVIRT_BIN" engine run --data-dir "$work/engine" --log-level error $ENGINE_FLAGS 2>"$work/engine.log" &
engine_pid=$!
for _ in $(seq 1 100); do
	curl -skf "https://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && break
	sleep 0.1
done
idle_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$engine_pid/status")
log "engine $POLYVIRT_BIN idle: RSS $((idle_kib / 1024)) MiB; holding $CONNS connections from $SOURCES addresses, $PROBES probes for $DURATION"
bin/loadgen -url "https://127.0.0.1:$port/api/v1/clusters" -ca "$work/engine/ca.pem" -token-file "$work/token" \
	-hold "$CONNS" -hold-sources "$SOURCES" -hold-request="$HOLD_REQUEST" -source 127.0.0.1 -new-conn -c "$PROBES" -d "$DURATION" -pid "$engine_pid"
if [ -s "$work/engine.log" ]; then
	echo "engine errors:"
	tail -5 "$work/engine.log" | sed 's/^/  /'
fi
