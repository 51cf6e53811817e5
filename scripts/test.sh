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

# The cross-builds run while the tests do (the end-to-end tests spend much
# of their time waiting for guests and daemons); their verdict is awaited
# after the tests. The ppc64le build is the one TestCapsOnRealPPC64LEKernel
# boots: whichever comes first, the other finds it in the build cache.
log "cross-builds (CGO_ENABLED=0), beside the tests"
crosslog=$(mktemp)
(
	for goarch in amd64 ppc64le arm64 s390x; do
		CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -o /dev/null ./cmd/polyvirt >>"$crosslog" 2>&1 ||
			{ echo "build for linux/$goarch failed" >>"$crosslog"; exit 1; }
	done
) &
crosspid=$!

# Tests that need libvirt (or Prometheus, QEMU, the kernels) fail, not skip,
# when it is missing.
export POLYVIRT_REQUIRE_LIBVIRT=1
export POLYVIRT_BIN="$PWD/bin/polyvirt"
# The longest packages first: go test starts packages in the order they are
# named (two at a time on 2 cores), and test/e2e alone takes most of the
# run; where ./... sorts it (after every internal package) it started
# minutes late.
log "go test (the whole suite: about 15 minutes on 2 cores)"
tests=0
# bin/test.json keeps go test's events (each test's time: "Elapsed").
# -parallel 3: test/e2e's light tests run three at a time (its package doc).
go test -json -count=1 -timeout 30m -parallel 3 "$@" ./test/e2e ./test/browser ./... | tee bin/test.json | bin/testsummary || tests=$?
crossok=0
wait "$crosspid" || crossok=$?
cat "$crosslog" >&2
rm -f "$crosslog"
[ "$crossok" = 0 ] || die "cross-builds failed"
[ "$tests" = 0 ] || die "tests failed"
log "all tests passed"
