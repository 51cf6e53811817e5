#!/usr/bin/env bash
# Sets up everything polyvirt's tests need on a Debian 12 machine (as root)
# and runs the whole test suite: format and vet checks, the cross-builds for
# every supported architecture, unit, golden, fuzz-seed, corpus conformance,
# live libvirt, end-to-end and browser tests (Debian's Chromium). It ends with one line counting the tests
# passed, failed and skipped, and names each skipped test with its reason
# (test/testsummary reads go test -json). Its arguments go to go test
# (./scripts/test.sh -run TestUpLab).
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

log "cross-builds (CGO_ENABLED=0)"
for goarch in amd64 ppc64le arm64 s390x; do
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -o /dev/null ./cmd/polyvirt || die "build for linux/$goarch failed"
done

build_polyvirt
go build -o bin/testsummary ./test/testsummary || die "building test/testsummary failed"

# Tests that need libvirt (or Prometheus, QEMU, the kernels) fail, not skip,
# when it is missing.
export POLYVIRT_REQUIRE_LIBVIRT=1
export POLYVIRT_BIN="$PWD/bin/polyvirt"
log "go test (the whole suite: about 17 minutes on 2 cores)"
go test -json -count=1 -timeout 30m "$@" ./... | bin/testsummary || die "tests failed"
log "all tests passed"
