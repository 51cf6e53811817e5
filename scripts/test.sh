#!/usr/bin/env bash
# Sets up everything polyvirt's tests need on a Debian 12 machine (as root)
# and runs the whole test suite: format and vet checks, the cross-builds for
# every supported architecture, unit, golden, fuzz-seed, corpus conformance,
# live libvirt, end-to-end and browser tests (Debian's Chromium). It ends with one line counting the tests
# passed, failed and skipped, and names each skipped test with its reason
# (test/testsummary reads go test -json; bin/test.json keeps it). Its
# arguments go to go test (./scripts/test.sh -run TestUpLab).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_go
ensure_libvirt
ensure_guest_kernels
ensure_postgres
ensure_prometheus
ensure_openapi_lint
ensure_browser
# The web UI's files, embedded by every build below.
./scripts/build-ui.sh

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || die "gofmt would change: $unformatted"

log "no merge conflict markers"
if markers=$(git grep -nE '^(<<<<<<<|>>>>>>>) ' -- . ':!*.pdf' 2>/dev/null); then
	die "merge conflict markers left in: $markers"
fi

log "go vet"
go vet ./...

build_polyvirt
go build -o bin/testsummary ./test/testsummary || die "building test/testsummary failed"

# The machine's libvirtd restarts during the run (supervise_libvirtd) are
# named at its end: the tests in flight then may have failed for it.
restarts_before=$(grep -c 'libvirtd ended' "$LIBVIRTD_SUPERVISOR_LOG" 2>/dev/null || true)

# alone ARGS... runs go test -json ARGS on its own, its events on stdout
# (the summary's), before the rest of the suite.
alone() {
	go test -json "$@" || true
}

crosslog=$(mktemp)
rm -f "$crosslog.done"
# Tests that need libvirt (or Prometheus, QEMU, the kernels) fail, not skip,
# when it is missing.
export POLYVIRT_REQUIRE_LIBVIRT=1
export POLYVIRT_BIN="$PWD/bin/polyvirt"
tests=0
# bin/test.json keeps go test's events (each test's time: "Elapsed").
: >bin/test.json
{
	# internal/libvirtconn first, alone: its live migrations of an emulated
	# POWER guest between two daemons are the tests most sensitive to a
	# neighbour's load (timeouts of a guest's boot under TCG). TestRolloutLab
	# next, alone, for the same reason: its two POWER guests migrate from
	# host to host. (They also ran once more when they failed, while the
	# tests ran on Debian 12's QEMU 7.2, which corrupted a migrated guest's
	# memory now and then: the scripts install QEMU 10 now, ensure_qemu in
	# scripts/lib.sh, and a failure is the suite's.)
	log "go test ./internal/libvirtconn (alone: its live migrations)" >&2
	alone -count=1 -timeout 10m "$@" ./internal/libvirtconn
	# With arguments (./scripts/test.sh -run X) the run is the one below.
	skip=()
	if [ $# = 0 ]; then
		log "go test ./test/e2e -run TestRolloutLab (alone: a rolling firmware update's live migrations)" >&2
		alone -count=1 -timeout 15m -run '^TestRolloutLab$' ./test/e2e
		skip=(-skip '^TestRolloutLab$')
	fi

	# The cross-builds run while the other tests do (the end-to-end tests
	# spend much of their time waiting for guests and daemons); their
	# verdict is awaited after the tests. The ppc64le build is the one
	# TestCapsOnRealPPC64LEKernel boots: whichever comes first, the other
	# finds it in the build cache.
	log "cross-builds (CGO_ENABLED=0), beside the tests" >&2
	(
		for goarch in amd64 ppc64le arm64 s390x; do
			CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -o /dev/null ./cmd/polyvirt >>"$crosslog" 2>&1 ||
				{ echo "build for linux/$goarch failed" >>"$crosslog"; exit 1; }
		done
		echo ok >>"$crosslog.done"
	) &

	# The longest packages first: go test starts packages in the order they
	# are named (two at a time on 2 cores), and test/e2e alone takes most
	# of the run; where ./... sorts it (after every internal package) it
	# started minutes late. -parallel 3: test/e2e's light tests run three
	# at a time (its package doc).
	log "go test (the whole suite: about 13-15 minutes on 2 cores)" >&2
	go test -json -count=1 -timeout 30m -parallel 3 "${skip[@]}" "$@" ./test/e2e ./test/browser \
		$(go list ./... | grep -vx 'polyvirt/internal/libvirtconn') || true
	wait || true # the cross-builds' verdict: $crosslog.done
} | tee bin/test.json | bin/testsummary || tests=$?
cat "$crosslog" >&2
crossok=0
[ -f "$crosslog.done" ] || crossok=1
rm -f "$crosslog" "$crosslog.done"
if ended=$(grep 'libvirtd ended' "$LIBVIRTD_SUPERVISOR_LOG" 2>/dev/null | tail -n +"$((${restarts_before:-0} + 1))") && [ -n "$ended" ]; then
	log "this machine's libvirtd ended during the run and was started again ($LIBVIRTD_SUPERVISOR_LOG; its crashes in dmesg):"
	printf '%s\n' "$ended" >&2
fi
[ "$crossok" = 0 ] || die "cross-builds failed"
[ "$tests" = 0 ] || die "tests failed"
log "all tests passed"
