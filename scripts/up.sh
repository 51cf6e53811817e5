#!/usr/bin/env bash
# Sets up what polyvirt needs on a Debian 12 machine (as root) and runs its
# main job: polyvirt up, a whole lab on this machine — the engine and two
# local hosts (this machine's architecture and a fake-KVM IBM POWER8) on
# libvirtd, the CLI logged in — until Ctrl-C. Its arguments go to polyvirt up
# (./scripts/up.sh --listen 0.0.0.0:8443, --data-dir DIR, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
log "up.sh: four steps, about 4 minutes on a fresh machine (later runs: seconds)"
log "step 1/4: a Go toolchain (${POLYVIRT_GO_VERSION} or newer; fetched when missing: a minute or two)"
ensure_go
log "step 2/4: libvirt and QEMU (x86_64 and POWER) and Debian's ppc64el installer, libvirtd started (about a minute when they are missing)"
ensure_libvirt
log "step 3/4: polyvirt (its web UI: npm's packages, a few seconds; then the binary)"
./scripts/build-ui.sh
build_polyvirt
log "step 4/4: polyvirt up — the engine and two hosts on this machine (up to a minute; Ctrl-C stops it)"
exec bin/polyvirt up "$@"
