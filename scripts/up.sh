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
ensure_go
ensure_libvirt
build_polyvirt
exec bin/polyvirt up "$@"
