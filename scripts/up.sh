#!/usr/bin/env bash
# Sets up what polyvirt needs on a Debian 12 machine (as root) and runs its
# main job: the capabilities of this host, read live through libvirt.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_go
ensure_libvirt
build_polyvirt
exec bin/polyvirt caps "$@"
