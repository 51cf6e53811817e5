#!/usr/bin/env bash
# Benchmarks one engine monitoring many simulated hosts (polyvirt-hostsim:
# the agent API over mutual TLS and HTTP/2, one port per host, enrolled with
# join tokens like real agents, pushing their statistics on their event
# streams like real agents), on SQLite and on PostgreSQL, and prints the
# figures: the engine's CPU and memory, its goroutines and Go heap, the
# statistics pushed and polled, how fresh the hosts' statistics stay, and the
# API latencies under several API loads. docs/benchmarks.md has the results
# and how to read them.
#
#   scripts/bench-engine.sh                  # the curve: 1,000, 3,000, 10,000 hosts, both backends
#   STEPS=10000 scripts/bench-engine.sh sqlite
#   STEPS=200 WINDOW=20s PROFILES=/tmp/prof scripts/bench-engine.sh sqlite
#
# One engine per backend: its hosts are added step by step (STEPS), and
# each step is measured once all its hosts are Up, so the curve costs one
# enrollment of the largest fleet per backend.
#
# Environment: STEPS (host counts measured in turn, 1000,3000,10000; HOSTS,
# when set and STEPS is not, is the only step), INTERVAL (2s, the engine's
# --stats-interval), WINDOW (20s per API load), WARMUP (10s), LOADS (API
# loads, CLIENTS:PAUSE or RATE/s,...: 0:0s,2:100ms,175/s; RATE/s starts
# calls at a fixed rate whatever the answers take), SIMHOSTS (hosts per
# simulator process, 2500: each enrolls and serves its share; a separate
# one measures), PROFILES (a directory: the engine's CPU and heap profiles
# of each window, taken from its --pprof-listen, as
# BACKEND/HOSTS/LOAD-cpu.pprof, BACKEND/HOSTS/LOAD-heap.pprof (and
# LOAD-heap-start.pprof, the heap at the window's start: go tool pprof
# -base it to see what the window allocated) and
# BACKEND/HOSTS/LOAD-goroutine.pprof (its goroutines at the end), and each
# simulator process's own CPU profile over its whole life as
# BACKEND/simN-cpu.pprof, and the measuring process's over its windows as
# BACKEND/HOSTS/client-cpu.pprof; read them with go tool pprof), SIMNICE (the
# simulator processes' nice level, 0: they stand for other machines, and
# with a higher one the engine's work goes first on the shared cores as it
# would on a machine of its own; the measuring process keeps the engine's
# level), SIMRENICE (the simulator processes' nice level once all the
# step's hosts are Up, before measuring, such as 19: their pushes then wait
# for the engine's cores, as if they ran on machines of their own, while
# their enrollment had SIMNICE's share; back at SIMNICE for the next
# step's enrollment, as root), TRACE (with PROFILES, an execution trace of the engine this long
# from the middle of each window, BACKEND/HOSTS/LOAD-trace.out, such as 5s;
# read it with go tool trace), ENGINE_GODEBUG (the engine's GODEBUG, such as gctrace=1; with
# PROFILES the engine's log is kept as BACKEND/engine.log), GCTRACE (1: the
# engine runs with gctrace=1 added to its GODEBUG, and each window counts
# its API calls over 50 ms that overlapped the engine's garbage
# collections, read from its log), ENGINE_GOMEMLIMIT
# (the engine's GOMEMLIMIT, Go's soft memory limit, such as 900MiB; unset:
# none), ENGINE_GOGC (the engine's GOGC, such as off with a
# ENGINE_GOMEMLIMIT far above its heap: a run without collections in its
# windows, to see what they cost; unset: Go's default), ENGINE_GOMAXPROCS
# (the engine's GOMAXPROCS; unset: Go's default, the machine's cores),
# ENGINE_ARGS (more
# flags of polyvirt engine run, such as --stats-write 30s). PostgreSQL: POLYVIRT_TEST_POSTGRES, else (as root) the server
# scripts/lib.sh's ensure_postgres sets up; a schema of its own, dropped
# afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

STEPS=${STEPS:-${HOSTS:-1000,3000,10000}}
INTERVAL=${INTERVAL:-2s}
WINDOW=${WINDOW:-20s}
WARMUP=${WARMUP:-10s}
LOADS=${LOADS:-0:0s,2:100ms,175/s}
SIMHOSTS=${SIMHOSTS:-2500}
PROFILES=${PROFILES:-}
SIMNICE=${SIMNICE:-0}
SIMRENICE=${SIMRENICE:-}
GCTRACE=${GCTRACE:-}
read -r -a engine_args <<<"${ENGINE_ARGS:-}"
engine_godebug=${ENGINE_GODEBUG:-}
if [ -n "$GCTRACE" ]; then
	engine_godebug=${engine_godebug:+$engine_godebug,}gctrace=1
fi
steps=(${STEPS//,/ })
HOSTS=${steps[-1]}
backends=${*:-sqlite postgres}

log "building bin/polyvirt and bin/polyvirt-hostsim"
mkdir -p bin
CGO_ENABLED=0 go build -o bin/polyvirt ./cmd/polyvirt
CGO_ENABLED=0 go build -o bin/polyvirt-hostsim ./cmd/polyvirt-hostsim
# Every host is a listening socket and a connection or two in the simulator
# and a connection in the engine.
ulimit -n $((HOSTS * 4 + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
log "file descriptors: $(ulimit -n) per process"

work=$(mktemp -d /tmp/polyvirt-bench.XXXXXX)
engine_pid=
sim_pids=()
schema=
stop_sims() {
	local p
	for p in "${sim_pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${sim_pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	sim_pids=()
}
# The running simulators' threads back at nice SIMNICE (the measuring
# process set them to SIMRENICE for the step before): the next step's
# enrollment gives them the share they had at theirs. Lowering a nice
# level takes root; without it they stay at SIMRENICE, and it says so.
renice_sims_back() {
	local p t failed=0
	for p in "${sim_pids[@]}"; do
		for t in /proc/"$p"/task/*; do
			renice -n "$SIMNICE" -p "${t##*/}" >/dev/null 2>&1 || failed=$((failed + 1))
		done
	done
	if [ "$failed" -gt 0 ]; then
		log "the running simulators' $failed threads could not go back to nice $SIMNICE (root only): they enroll the next step's hosts beside them at nice $SIMRENICE"
	fi
	return 0
}
cleanup() {
	stop_sims
	[ -n "$engine_pid" ] && kill "$engine_pid" 2>/dev/null && wait "$engine_pid" 2>/dev/null || true
	if [ -n "$schema" ]; then
		psql "$POLYVIRT_TEST_POSTGRES" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

run_backend() {
	local backend=$1 dir="$work/$1" port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	local init=(bin/polyvirt engine init --data-dir "$dir" --name localhost --listen "127.0.0.1:$port" --token-file "$work/$backend.token")
	local dbproc=() runenv=(env)
	if [ "$backend" = postgres ]; then
		schema="bench_$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
		POLYVIRT_DB="$POLYVIRT_TEST_POSTGRES" "${init[@]}" --db-schema "$schema" >/dev/null
		dbproc=(--db-process postgres)
		# engine.json keeps no password: every run gets it from the environment.
		runenv=(env POLYVIRT_DB="$POLYVIRT_TEST_POSTGRES")
	else
		"${init[@]}" >/dev/null
	fi
	local pprof=() profiling=()
	if [ -n "$PROFILES" ]; then
		local pport
		pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
		pprof=(--pprof-listen "127.0.0.1:$pport")
		profiling=(--pprof "127.0.0.1:$pport")
	fi
	"${runenv[@]}" GOMEMLIMIT="${ENGINE_GOMEMLIMIT:-}" GOGC="${ENGINE_GOGC:-}" GOMAXPROCS="${ENGINE_GOMAXPROCS:-}" GODEBUG="$engine_godebug" bin/polyvirt engine run --data-dir "$dir" --stats-interval "$INTERVAL" --log-level warn "${pprof[@]}" "${engine_args[@]}" 2>"$work/$backend.engine.log" &
	engine_pid=$!
	for _ in $(seq 1 100); do
		curl -skf "https://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && break
		sleep 0.1
	done
	log "$backend: ${STEPS//,/, } simulated hosts in turn ($SIMHOSTS per simulator process), statistics every $INTERVAL, $WINDOW per API load${ENGINE_GOMEMLIMIT:+, engine GOMEMLIMIT=$ENGINE_GOMEMLIMIT}"
	local sim=(bin/polyvirt-hostsim --engine "https://127.0.0.1:$port" --ca-file "$dir/ca.pem" --token-file "$work/$backend.token")
	local have=0 n share i=0 t0
	for n in "${steps[@]}"; do
		t0=$SECONDS
		[ -n "$SIMRENICE" ] && renice_sims_back
		# Simulator processes for the hosts this step adds; they serve until
		# the end.
		while [ "$have" -lt "$n" ]; do
			share=$((n - have < SIMHOSTS ? n - have : SIMHOSTS))
			i=$((i + 1))
			local simprof=()
			if [ -n "$PROFILES" ]; then
				mkdir -p "$PROFILES/$backend"
				simprof=(--cpu-profile "$PROFILES/$backend/sim$i-cpu.pprof")
			fi
			nice -n "$SIMNICE" "${sim[@]}" --hosts "$share" --first "$have" --loopbacks $((1 + HOSTS / 2500)) "${simprof[@]}" 2>"$work/$backend.sim$i.log" &
			sim_pids+=($!)
			have=$((have + share))
		done
		local prof=()
		[ -n "$PROFILES" ] && prof=("${profiling[@]}" --profile-dir "$PROFILES/$backend/$n" ${TRACE:+--trace "$TRACE"} --cpu-profile "$PROFILES/$backend/$n/client-cpu.pprof")
		[ -n "$GCTRACE" ] && prof+=(--engine-gc-log "$work/$backend.engine.log")
		[ -n "$SIMRENICE" ] && prof+=(--sims-nice "$SIMRENICE")
		log "$backend: $n hosts"
		if ! "${sim[@]}" --hosts 0 --total "$n" --bench "$WINDOW" --warmup "$WARMUP" --api-loads "$LOADS" \
			--engine-pid "$engine_pid" "${dbproc[@]}" "${prof[@]}"; then
			log "$backend: $n hosts: the measurement failed; the simulators said:"
			tail -n 3 "$work/$backend".sim*.log | sed 's/^/  /'
			break
		fi
		log "$backend: $n hosts measured $((SECONDS - t0)) s after their simulators started"
	done
	stop_sims
	kill "$engine_pid"
	wait "$engine_pid" 2>/dev/null || true
	engine_pid=
	if [ -n "$PROFILES" ]; then
		mkdir -p "$PROFILES/$backend"
		cp "$work/$backend.engine.log" "$PROFILES/$backend/engine.log"
	fi
	# The engine's warnings (its garbage collections' lines apart).
	local warnings
	warnings=$(grep -v '^gc [0-9]* @' "$work/$backend.engine.log" | tail -20 || true)
	if [ -n "$warnings" ]; then
		echo "engine warnings:"
		sed 's/^/  /' <<<"$warnings"
	fi
	if [ -n "$schema" ]; then
		psql "$POLYVIRT_TEST_POSTGRES" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
		schema=
	fi
}

for b in $backends; do
	case $b in
	sqlite) run_backend sqlite ;;
	postgres)
		if [ -z "${POLYVIRT_TEST_POSTGRES:-}" ]; then
			if [ "$(id -u)" = 0 ]; then
				ensure_postgres
			else
				log "postgres: skipped (set POLYVIRT_TEST_POSTGRES, or run as root to set the server up)"
				continue
			fi
		fi
		run_backend postgres
		;;
	*) die "unknown backend $b (sqlite or postgres)" ;;
	esac
done
