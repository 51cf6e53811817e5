#!/usr/bin/env bash
# Storage figures for docs/benchmarks.md. It runs polyvirt up in a scratch
# directory (the engine and this machine's host on the local libvirtd), adds
# a pool in the images directory the agents allow, and times with hyperfine:
#  1. an upload of a SIZE_MIB image through the engine and the agent
#     (`polyvirt volume upload`, its SHA-256 given: the data crosses the
#     CLI, the engine and the agent, is checksummed and fsynced by the
#     agent, and checked with qemu-img before it is accepted) against `cp`
#     of the same file on the same disk followed by `sync` (the same data
#     written durably), in one run, two ways: the CLI speaking to the
#     engine over TLS as a remote one does (--engine https://…), and over
#     the engine's local socket as one on the engine's machine can
#     (--engine unix://…: no TLS from the CLI to the engine); the engine
#     speaks to the agent over mutual TLS in both;
#  2. a VM made from a library image (a qcow2 overlay on it) and started:
#     `polyvirt vm create NAME --image I --start`, a CLI process until it
#     prints "running" (QEMU started; the guest then boots on its own time).
# Needs root and libvirtd (scripts/up.sh or scripts/test.sh starts it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_go
ensure_libvirt
apt_install hyperfine jq
build_polyvirt

RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-1024}
images=/var/lib/polyvirt/images
dir=$(mktemp -d /tmp/polyvirt-bench-storage.XXXXXX)
pool=$(mktemp -d "$images/bench-pool.XXXXXX")
up_pid=
cleanup() {
	if [ -n "$up_pid" ]; then
		bin/polyvirt vm delete --force bench-img-vm >/dev/null 2>&1 || true
		kill -TERM "$up_pid" 2>/dev/null || true
		wait "$up_pid" 2>/dev/null || true
		# polyvirt up leaves power8-b's libvirtd of its own running.
		bin/polyvirt up --down --data-dir "$dir/lab" >/dev/null 2>&1 || true
	fi
	for d in $(virsh -q list --all --name | grep '^lab-bst-' || true); do
		virsh -q destroy "$d" >/dev/null 2>&1 || true
		virsh -q undefine "$d" >/dev/null 2>&1 || true
	done
	rm -rf "$dir" "$pool"
}
trap cleanup EXIT

export POLYVIRT_CONFIG=$dir/cli.json
bin/polyvirt up --data-dir "$dir/lab" --listen 127.0.0.1:0 --name-prefix bst- --quiet >"$dir/up.log" 2>&1 &
up_pid=$!
for i in $(seq 1 600); do
	grep -q '^Next:' "$dir/up.log" 2>/dev/null && break
	kill -0 "$up_pid" 2>/dev/null || { cat "$dir/up.log"; die "polyvirt up exited"; }
	sleep 0.2
done
grep -q '^Next:' "$dir/up.log" || die "polyvirt up did not get ready"
cluster=$(bin/polyvirt host list -o json | jq -r '.[] | select(.name | endswith("x86_64-a")) | .cluster')
P=bin/polyvirt
$P pool create bench --cluster "$cluster" --path "$pool" >/dev/null

# 1. Upload against cp + sync of the same file, on the same disk.
src=$dir/src.raw
log "writing a ${SIZE_MIB} MiB image"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$src"
sum=$(sha256sum "$src" | cut -d' ' -f1)
# The agent alone, for the breakdown: the same data PUT straight to it
# (curl, the engine's client certificate, HTTP/1.1 as the engine speaks to
# it: over HTTP/2 the agent's 1 MiB flow-control window, not polyvirt,
# sets the pace), its upload begun before.
lab=$dir/lab
addr=$(jq -r '.hosts[] | select(.name | endswith("x86_64-a")) | .address' "$lab/up.json")
poolid=$($P pool show bench -o json | jq -r .id)
A="curl -sf --cacert $lab/engine/ca.pem --cert $lab/engine/engine-client.pem --key $lab/engine/engine-client-key.pem"
q="poolId=$poolid&pool=bench&poolPath=$pool&poolKind=shared&name=direct.raw"
begin="{\"pool\":{\"id\":\"$poolid\",\"name\":\"bench\",\"path\":\"$pool\",\"kind\":\"shared\"},\"name\":\"direct.raw\",\"format\":\"raw\",\"sizeBytes\":$((SIZE_MIB << 20)),\"sha256\":\"$sum\"}"
sock=unix://$lab/engine/engine.sock
L="env POLYVIRT_ENGINE=$sock $P"
$L volume list --pool bench >/dev/null || die "the engine's local socket ($sock) does not answer"
hyperfine --runs "$RUNS" --export-json "$dir/upload.json" \
	--prepare "rm -f $dir/copy.raw; sync" -n "cp + sync" "cp $src $dir/copy.raw && sync" \
	--prepare "$P volume delete bench up.raw >/dev/null 2>&1 || true; sync" \
	-n "polyvirt volume upload (TLS to the engine)" "$P volume upload bench up.raw $src --format raw --sha256 $sum -q" \
	--prepare "$P volume delete bench up.raw >/dev/null 2>&1 || true; sync" \
	-n "polyvirt volume upload (the engine's local socket)" "$L volume upload bench up.raw $src --format raw --sha256 $sum -q" \
	-n "agent alone (curl PUT)" --prepare "rm -f $pool/direct.raw; $A -X POST -H 'Content-Type: application/json' -d '$begin' https://$addr/v1/storage/uploads >/dev/null; sync" \
	"$A --http1.1 -T $src -H 'Upload-Offset: 0' -H 'Content-Type: application/octet-stream' 'https://$addr/v1/storage/uploads/data?$q' -o /dev/null"
jq -r --argjson mib "$SIZE_MIB" '.results[] | "\(.command): median \(.median | . * 1000 | round) ms, \($mib / .median | round) MiB/s"' "$dir/upload.json"
jq -r '"the upload through the engine: over TLS " + (.results[0].median / .results[1].median * 100 | round | tostring) + "%, over the local socket " + (.results[0].median / .results[2].median * 100 | round | tostring) + "% of the throughput of cp + sync; the agent alone: " + (.results[0].median / .results[3].median * 100 | round | tostring) + "%"' "$dir/upload.json"

# Where the CPU goes in one more upload: the CLI's own (bash's time) and
# polyvirt up's (the engine, in its process, and the agents, its children),
# from /proc; against cp + sync's.
tree_ticks() {
	local p t=0 pids=$1 kids=$1
	while [ -n "$kids" ]; do
		kids=$(for p in $kids; do pgrep -P "$p" || true; done)
		pids="$pids $kids"
	done
	for p in $pids; do
		[ -r "/proc/$p/stat" ] && t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
	done
	echo "$t"
}
hz=$(getconf CLK_TCK)
TIMEFORMAT='%U %S'
cpcpu=$({ time { cp "$src" "$dir/copy.raw" && sync; }; } 2>&1)
rm -f "$dir/copy.raw"
for way in "TLS to the engine" "the engine's local socket"; do
	$P volume delete bench up.raw >/dev/null 2>&1 || true
	sync
	[ "$way" = "TLS to the engine" ] && cmd=$P || cmd=$L
	before=$(tree_ticks "$up_pid")
	cli=$({ time $cmd volume upload bench up.raw "$src" --format raw --sha256 "$sum" -q >/dev/null; } 2>&1)
	after=$(tree_ticks "$up_pid")
	awk -v way="$way" -v cli="$cli" -v up=$((after - before)) -v hz="$hz" -v cp="$cpcpu" -v mib="$SIZE_MIB" 'BEGIN {
		split(cli, c, " "); split(cp, k, " ")
		printf "CPU seconds per GiB, %s: the CLI %.2f, the engine and the agent %.2f, in all %.2f; cp + sync %.2f\n",
			way, (c[1] + c[2]) * 1024 / mib, up / hz * 1024 / mib, (c[1] + c[2] + up / hz) * 1024 / mib, (k[1] + k[2]) * 1024 / mib
	}'
done

# 2. A VM made from an image and started.
qemu-img create -q -f qcow2 "$dir/base.qcow2" 2G
$P image upload bench-img "$dir/base.qcow2" --pool bench --arch "$(uname -m)" -q >/dev/null
hyperfine --runs "$RUNS" --export-json "$dir/vm.json" \
	--prepare "$P vm delete --force bench-img-vm >/dev/null 2>&1 || true" \
	-n "vm create --image --start" "$P vm create bench-img-vm --cluster $cluster --image bench-img --memory 256 --display none --start | grep -q running"
jq -r '.results[] | "\(.command): median \(.median | . * 1000 | round) ms (min \(.min | . * 1000 | round) ms)"' "$dir/vm.json"
echo "the engine's own log of those (medians): the creation (the overlay made on the host: volumes), the start"
echo "(the agent defining the domain, then libvirt starting QEMU):"
awk '
	function ms(d) {
		if (d ~ /µs$/) return substr(d, 1, length(d) - 2) / 1000
		if (d ~ /ms$/) return substr(d, 1, length(d) - 2) + 0
		if (d ~ /ns$/) return substr(d, 1, length(d) - 2) / 1e6
		if (d ~ /s$/) return substr(d, 1, length(d) - 1) * 1000
		return 0
	}
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
	}
	/vm=bench-img-vm / {
		delete v
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		if ($0 ~ /msg="VM created"/) { c++; ct[c] = ms(v["took"]); vt[c] = ms(v["volumesTook"]) }
		if ($0 ~ /msg="VM started"/) { s++; st[s] = ms(v["took"]); cr[s] = ms(v["agentCreate"]); as[s] = ms(v["agentStart"]) }
	}
	END {
		if (c) printf "  %d creations: %.1f ms, of which the overlay %.1f ms\n", c, median(ct, c), median(vt, c)
		if (s) printf "  %d starts: %.1f ms, of which the agent defining it %.1f ms and starting it %.1f ms\n", s, median(st, s), median(cr, s), median(as, s)
	}' "$dir/lab/logs/engine.log"
# In the same run, libvirt alone starting the same domain (a transient copy
# of the last one's definition under another name and UUID — libvirt takes
# the SMBIOS one when the domain has none —, on the same overlay while the
# VM is Down): what is left of the VM's start above is polyvirt's.
dom=$(virsh -q list --all --name | grep '^lab-bst-.*bench-img-vm$' | head -1)
[ -n "$dom" ] || die "no libvirt domain of bench-img-vm"
virsh -q dumpxml --inactive "$dom" | sed -e "s|<name>$dom</name>|<name>lab-bst-baseline</name>|" -e '/<uuid>/d' -e "/<entry name='uuid'>/d" >"$dir/baseline.xml"
$P vm destroy bench-img-vm >/dev/null
hyperfine --runs "$RUNS" --export-json "$dir/virsh.json" \
	--prepare "virsh -q destroy lab-bst-baseline >/dev/null 2>&1 || true" \
	-n "virsh create (libvirt alone)" "virsh -q create $dir/baseline.xml >/dev/null"
virsh -q destroy lab-bst-baseline >/dev/null 2>&1 || true
jq -r '.results[] | "\(.command): median \(.median | . * 1000 | round) ms (min \(.min | . * 1000 | round) ms)"' "$dir/virsh.json"
jq -rn --slurpfile vm "$dir/vm.json" --slurpfile lv "$dir/virsh.json" \
	'"polyvirt'"'"'s own part of a VM made from an image and started (the medians'"'"' difference): \(($vm[0].results[0].median - $lv[0].results[0].median) * 1000 | round) ms"'
$P vm delete --force bench-img-vm >/dev/null 2>&1 || true
$P image delete bench-img >/dev/null
