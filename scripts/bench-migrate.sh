#!/usr/bin/env bash
# Live migration through polyvirt against virsh, for docs/benchmarks.md. It
# runs polyvirt up in a scratch directory (power8-a on this machine's
# libvirtd, power8-b on a libvirtd of the lab's own) and moves a running
# 1 GiB ppc64le guest (Debian's ppc64el installer kernel and initrd, TCG)
# between the two, RUNS times each way:
#  1. `polyvirt vm migrate NAME --to HOST -o json`: the total time, the
#     downtime libvirt measured and the engine's own share (decision and
#     orders), as the engine reports them;
#  2. `virsh migrate --live --p2p` of a twin domain (the same definition
#     rendered by polyvirt domxml, not managed by polyvirt, started afresh
#     for each run) from power8-a's daemon to power8-b's, over the same TLS
#     port with power8-a's libvirt certificate, timed by the shell.
# Needs root and libvirtd (scripts/up.sh or scripts/test.sh starts it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_go
ensure_libvirt
apt_install jq debian-installer-12-netboot-ppc64el
build_polyvirt

RUNS=${RUNS:-5}
KERNEL=/usr/lib/debian-installer/images/12/ppc64el/text/debian-installer/ppc64el/vmlinux
INITRD=/usr/lib/debian-installer/images/12/ppc64el/text/debian-installer/ppc64el/initrd.gz
dir=$(mktemp -d /tmp/polyvirt-bench-mig.XXXXXX)
up_pid=
twin=bench-mig-virsh
b_uri=
cleanup() {
	if [ -n "$b_uri" ]; then
		virsh -q -c "$b_uri" destroy "$twin" >/dev/null 2>&1 || true
	fi
	virsh -q destroy "$twin" >/dev/null 2>&1 || true
	if [ -n "$up_pid" ]; then
		bin/polyvirt vm delete --force bench-mig >/dev/null 2>&1 || true
		kill -TERM "$up_pid" 2>/dev/null || true
		wait "$up_pid" 2>/dev/null || true
		bin/polyvirt up --down --data-dir "$dir/lab" >/dev/null 2>&1 || true
	fi
	for d in $(virsh -q list --all --name | grep '^lab-bmig-' || true); do
		virsh -q destroy "$d" >/dev/null 2>&1 || true
		virsh -q undefine --nvram "$d" >/dev/null 2>&1 || true
	done
	rm -rf "$dir"
}
trap cleanup EXIT

export POLYVIRT_CONFIG=$dir/cli.json
bin/polyvirt up --data-dir "$dir/lab" --listen 127.0.0.1:0 --name-prefix bmig- --quiet >"$dir/up.log" 2>&1 &
up_pid=$!
for i in $(seq 1 900); do
	grep -q '^Next:' "$dir/up.log" 2>/dev/null && break
	kill -0 "$up_pid" 2>/dev/null || { cat "$dir/up.log"; die "polyvirt up exited"; }
	sleep 0.2
done
grep -q '^Next:' "$dir/up.log" || die "polyvirt up did not get ready"
lab=$dir/lab
host_a=bmig-power8-a
host_b=bmig-power8-b
jq -e --arg b "$host_b" '.hosts[] | select(.name == $b)' "$lab/up.json" >/dev/null || die "the lab has no $host_b (it needs a libvirtd of its own: root, unshare, nsenter)"
mig_a=$(jq -r --arg h "$host_a" '.hosts[] | select(.name == $h) | .migration' "$lab/up.json")
mig_b=$(jq -r --arg h "$host_b" '.hosts[] | select(.name == $h) | .migration' "$lab/up.json")
pki_a=$lab/agents/$host_a/libvirt-pki
pki_b=$lab/agents/$host_b/libvirt-pki
b_uri="qemu+unix:///system?socket=$lab/daemons/$host_b/run/libvirt-sock"

# polyvirt: the VM boots on power8-a first.
bin/polyvirt vm create bench-mig --cluster bmig-power --memory 1024 --cpus 1 --host "$host_a" \
	--kernel "$KERNEL" --initrd "$INITRD" --cmdline console=hvc0 --start >/dev/null
bin/polyvirt vm update bench-mig --unpin >/dev/null
# The twin: the same definition, rendered for this machine, started on
# this machine's libvirtd.
cat >"$dir/twin.yaml" <<EOF
name: $twin
arch: ppc64le
machine: pseries
memory: {sizeMiB: 1024}
cpu: {cores: 1, model: POWER8}
display: {type: vnc}
kernel: {path: $KERNEL, initrd: $INITRD, cmdline: console=hvc0}
EOF
bin/polyvirt domxml -f "$dir/twin.yaml" --fake-kvm >"$dir/twin.xml"
virsh -q create "$dir/twin.xml" >/dev/null
sleep 40 # both kernels booted: the installers wait for their users

echo "## polyvirt vm migrate (1 GiB ppc64le, TCG): total, downtime, the engine's share"
: >"$dir/polyvirt.tsv"
for i in $(seq 1 "$RUNS"); do
	for to in "$host_b" "$host_a"; do
		bin/polyvirt vm migrate bench-mig --to "$to" -o json >"$dir/m.json"
		jq -r '[.destination, .elapsedMs, .downtimeMs, .engineMs] | @tsv' "$dir/m.json" | tee -a "$dir/polyvirt.tsv"
	done
done
echo "## virsh migrate --live --p2p (the twin, the same daemons and TLS ports, $host_a → $host_b)"
: >"$dir/virsh.tsv"
ms() { date +%s%3N; }
for i in $(seq 1 "$RUNS"); do
	if [ "$i" -gt 1 ]; then
		# A twin of its own for each run, booted as the first.
		virsh -q -c "$b_uri" destroy "$twin" >/dev/null 2>&1 || true
		virsh -q create "$dir/twin.xml" >/dev/null
		sleep 40
	fi
	t0=$(ms)
	virsh -q migrate --live --p2p "$twin" "qemu+tls://$mig_b/system?pkipath=$pki_a" --migrateuri tcp://127.0.0.1
	t1=$(ms)
	virsh -q -c "$b_uri" domstate "$twin" >/dev/null || die "the twin did not arrive on $host_b"
	printf '%s\t%s\n' "$host_b" $((t1 - t0)) | tee -a "$dir/virsh.tsv"
done
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : int((v[NR/2]+v[NR/2+1])/2)}'; }
echo "## medians (ms)"
echo "polyvirt total:    $(cut -f2 "$dir/polyvirt.tsv" | median) (to $host_b: $(grep "^$host_b" "$dir/polyvirt.tsv" | cut -f2 | median))"
echo "polyvirt downtime: $(cut -f3 "$dir/polyvirt.tsv" | median)"
echo "engine's share:    $(cut -f4 "$dir/polyvirt.tsv" | median)"
echo "virsh total:       $(cut -f2 "$dir/virsh.tsv" | median)"
