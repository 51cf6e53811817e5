#!/usr/bin/env bash
# Whole-process measurements of `polyvirt caps` for docs/benchmarks.md:
#  1. live host with libvirt, side by side with one `virsh capabilities`;
#  2. the 160-thread S822L POWER8E snapshot of the corpus (--root): time and
#     peak memory.
# Needs root, libvirtd running (scripts/test.sh or scripts/up.sh starts it),
# hyperfine, and ../shared/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_go
ensure_libvirt
apt_install hyperfine time
build_polyvirt

corpus=../shared/corpus
[ -d "$corpus" ] || die "../shared/corpus is absent"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/proc" "$root/sys/devices/system"
cp "$corpus/libvirt-hostcpu/linux-ppc64-subcores1.cpuinfo" "$root/proc/cpuinfo"
tar -xzf "$corpus/libvirt-hostcpu/linux-subcores1.sysfs.tar.gz" -C "$root"
mv "$root/linux-subcores1/cpu" "$root/linux-subcores1/node" "$root/sys/devices/system/"

echo "## live host: polyvirt caps -o json vs virsh capabilities"
hyperfine -N --warmup 5 --runs 50 \
	'bin/polyvirt caps -o json' \
	'virsh -c qemu:///system capabilities'

echo "## S822L snapshot (160 threads, SMT off): polyvirt caps -o json --root"
hyperfine -N --warmup 5 --runs 100 "bin/polyvirt caps -o json --root $root"
for i in 1 2 3; do
	/usr/bin/time -f "peak RSS %M KiB, elapsed %e s" bin/polyvirt caps -o json --root "$root" >/dev/null
done
