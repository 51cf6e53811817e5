#!/usr/bin/env bash
# The engine's overhead on a VM start, for docs/benchmarks.md. It runs
# polyvirt up in a scratch directory (the engine, this machine's host and a
# fake-KVM POWER8, on the local libvirtd) and times, for a ppc64le and an
# x86_64 VM of 256 MiB (no disk, no kernel: QEMU starts and the firmware
# waits), side by side:
#  1. the agent's own start: POST /v1/vms/ID/start of a VM defined on it
#     directly (what `bench-agent.sh` measures);
#  2. a start through the engine: POST /api/v1/vms/NAME/start, which
#     schedules the VM, checks its definition on the chosen host's agent
#     (unchanged since its last run: kept) and starts it, answering once it
#     runs;
#  3. `polyvirt vm start NAME` (a CLI process) until it prints "running".
# Each VM is destroyed before each run (hyperfine --prepare).
# Needs root and libvirtd (scripts/up.sh or scripts/test.sh starts it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_go
ensure_libvirt
apt_install hyperfine curl jq
build_polyvirt

RUNS=${RUNS:-20}
dir=$(mktemp -d /tmp/polyvirt-bench-vm.XXXXXX)
up_pid=
cleanup() {
	if [ -n "$up_pid" ]; then
		for n in bench-ppc-engine bench-x86-engine; do
			bin/polyvirt vm delete --force "$n" >/dev/null 2>&1 || true
		done
		kill -TERM "$up_pid" 2>/dev/null || true
		wait "$up_pid" 2>/dev/null || true
		# polyvirt up leaves power8-b's libvirtd of its own running.
		bin/polyvirt up --down --data-dir "$dir/lab" >/dev/null 2>&1 || true
	fi
	for d in $(virsh -q list --all --name | grep '^lab-bench-' || true); do
		virsh -q destroy "$d" >/dev/null 2>&1 || true
		virsh -q undefine "$d" >/dev/null 2>&1 || true
	done
	rm -rf "$dir"
}
trap cleanup EXIT

export POLYVIRT_CONFIG=$dir/cli.json
bin/polyvirt up --data-dir "$dir/lab" --listen 127.0.0.1:0 --name-prefix bench- --quiet >"$dir/up.log" 2>&1 &
up_pid=$!
for i in $(seq 1 600); do
	grep -q '^Next:' "$dir/up.log" 2>/dev/null && break
	kill -0 "$up_pid" 2>/dev/null || { cat "$dir/up.log"; die "polyvirt up exited"; }
	sleep 0.2
done
grep -q '^Next:' "$dir/up.log" || die "polyvirt up did not get ready"
lab=$dir/lab
url=$(jq -r .engineUrl "$lab/up.json")
token=$(cat "$lab/admin.token")
E=(curl -sf --cacert "$lab/engine/ca.pem" -H "Authorization: Bearer $token")
A=(curl -sf --cacert "$lab/engine/ca.pem" --cert "$lab/engine/engine-client.pem" --key "$lab/engine/engine-client-key.pem")
Eq="curl -sf --cacert $lab/engine/ca.pem -H 'Authorization: Bearer $token'"
Aq="curl -sf --cacert $lab/engine/ca.pem --cert $lab/engine/engine-client.pem --key $lab/engine/engine-client-key.pem"

for spec in "ppc 1 ppc64le" "x86 0 x86_64"; do
	set -- $spec
	host=$(jq -r ".hosts[$2].name" "$lab/up.json")
	cluster=$(jq -r ".hosts[$2].cluster" "$lab/up.json")
	addr=$(jq -r ".hosts[$2].address" "$lab/up.json")
	ename=bench-$1-engine
	aname=bench-$1-agent
	bin/polyvirt vm create "$ename" --cluster "$cluster" --memory 256 --cpus 1 --host "$host" >/dev/null
	# The same completed definition, another name and id, on the agent.
	def=$("${E[@]}" "$url/api/v1/vms/$ename" | jq -c --arg n "$aname" '.definition | .name = $n | del(.uuid)')
	id=$("${A[@]}" -X POST --data "$def" "https://$addr/v1/vms" | jq -r .id)
	echo "## start a $3 VM on $host: the agent alone, through the engine's API, with the CLI"
	hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$dir/$1.json" \
		-n "agent  POST /v1/vms/ID/start" --prepare "$Aq -X POST https://$addr/v1/vms/$id/destroy" \
		"$Aq -X POST https://$addr/v1/vms/$id/start" \
		-n "engine POST /api/v1/vms/NAME/start" --prepare "$Eq -X POST $url/api/v1/vms/$ename/destroy" \
		"$Eq -X POST $url/api/v1/vms/$ename/start" \
		-n "CLI    polyvirt vm start NAME" --prepare "$Eq -X POST $url/api/v1/vms/$ename/destroy" \
		"bin/polyvirt vm start $ename"
	jq -r '.results[] | "\(.command): median \(.median * 1000 | floor) ms, mean \(.mean * 1000 | floor) ± \(.stddev * 1000 | floor) ms, min \(.min * 1000 | floor) ms"' "$dir/$1.json"
	echo "the engine's own log of those starts (medians): the whole start, the agent's start call, the"
	echo "definition check on the agent, and the rest (scheduling, database, the engine's own work):"
	grep "msg=\"VM started\" .* vm=$ename " "$lab/logs/engine.log" | awk '
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
		{
			for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			n++; took[n] = ms(v["took"]); st[n] = ms(v["agentStart"]); ck[n] = ms(v["agentCheck"])
			own[n] = took[n] - st[n] - ck[n] - ms(v["agentCreate"])
		}
		END { if (n) printf "  %d starts: whole %.1f ms, agent start %.1f ms, agent check %.1f ms, engine %.1f ms\n", n, median(took, n), median(st, n), median(ck, n), median(own, n) }'
	"${A[@]}" -X POST "https://$addr/v1/vms/$id/destroy" >/dev/null || true
	"${A[@]}" -X DELETE "https://$addr/v1/vms/$id?force=true" >/dev/null || true
	bin/polyvirt vm delete --force "$ename" >/dev/null
done

echo "## scheduling decisions (Go benchmark: 1,000 hosts, 10,000 VMs)"
go test -run '^$' -bench . -benchtime 3s ./internal/engine/scheduler/
