#!/usr/bin/env bash
# Whole-process measurements of the host agent for docs/benchmarks.md:
#  1. starting a VM through the agent vs `virsh create` of the same domain XML
#     (x86_64 q35 and ppc64le pseries, TCG), side by side;
#  2. GET /v1/capabilities latency at 50 concurrent mutual-TLS clients;
#  3. the idle agent's CPU share and resident memory.
# Needs root and libvirtd (scripts/test.sh or scripts/up.sh starts it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root
ensure_go
ensure_libvirt
apt_install hyperfine curl
build_polyvirt
go build -o bin/loadgen ./test/loadgen

dir=$(mktemp -d)
pids=()
cleanup() {
	for n in bench-agent-x86 bench-agent-ppc bench-virsh-x86 bench-virsh-ppc; do
		virsh -q destroy "$n" >/dev/null 2>&1 || true
		virsh -q undefine "$n" >/dev/null 2>&1 || true
	done
	[ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
bin/polyvirt agent certs --dir "$dir" --host bench >/dev/null
C=(curl -sf --cacert "$dir/ca.pem" --cert "$dir/client.pem" --key "$dir/client-key.pem")
# start_agent PORT HOSTID [FLAGS...]: an agent sharing the certificates.
start_agent() {
	local port=$1 host=$2
	shift 2
	mkdir -p "$dir/$host"
	cp "$dir"/*.pem "$dir/$host/"
	bin/polyvirt agent --data-dir "$dir/$host" --host-id "$host" --listen 127.0.0.1:$port "$@" 2>"$dir/$host.log" &
	pids+=($!)
	for i in $(seq 1 50); do "${C[@]}" https://127.0.0.1:$port/v1/openapi.json >/dev/null && return; sleep 0.2; done
	die "agent $host does not answer"
}
start_agent 7611 bench-x86
start_agent 7612 bench-power8 --profile s822l-power8e
agent_pid=${pids[0]}

vm() { # name arch machine
	printf '{"name":"%s","arch":"%s","machine":"%s","memory":{"sizeMiB":512},"display":{"type":"vnc","listen":"127.0.0.1"}}' "$1" "$2" "$3"
}
for spec in "x86 x86_64 q35 7611" "ppc ppc64le pseries 7612"; do
	set -- $spec
	port=$4
	name=bench-agent-$1
	id=$("${C[@]}" -X POST --data "$(vm "$name" "$2" "$3")" https://127.0.0.1:$port/v1/vms | sed -n 's/.*"id": "\(.*\)".*/\1/p' | head -1)
	# The same domain XML, under another name and UUID, for virsh create.
	virsh -q dumpxml --inactive "$name" | sed -e "s|<name>$name</name>|<name>bench-virsh-$1</name>|" -e '/<uuid>/d' -e "/entry name='uuid'/d" -e 's|<log file=[^>]*/>||' -e '/<metadata>/,/<\/metadata>/d' >"$dir/virsh-$1.xml"
	echo "## start a $2 VM: through the agent vs virsh create"
	hyperfine -N --warmup 2 --runs 15 \
		--prepare "curl -sf --cacert $dir/ca.pem --cert $dir/client.pem --key $dir/client-key.pem -X POST https://127.0.0.1:$port/v1/vms/$id/destroy" \
		"curl -sf --cacert $dir/ca.pem --cert $dir/client.pem --key $dir/client-key.pem -X POST https://127.0.0.1:$port/v1/vms/$id/start" \
		--prepare "sh -c 'virsh -q destroy bench-virsh-$1 >/dev/null 2>&1; true'" \
		"virsh -q create $dir/virsh-$1.xml"
	"${C[@]}" -X POST https://127.0.0.1:$port/v1/vms/$id/destroy >/dev/null
	virsh -q destroy "bench-virsh-$1" >/dev/null 2>&1 || true
done

port=7611
echo "## GET /v1/capabilities, 50 concurrent clients"
bin/loadgen -url https://127.0.0.1:$port/v1/capabilities -c 50 -d 20s \
	-ca "$dir/ca.pem" -cert "$dir/client.pem" -key "$dir/client-key.pem"

echo "## idle agent (60 s, statistics sampled every 5 s, no VM)"
sleep 5
ticks() { awk '{print $14 + $15}' /proc/$agent_pid/stat; }
t0=$(ticks)
sleep 60
t1=$(ticks)
hz=$(getconf CLK_TCK)
awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN { printf "CPU: %.2f%% of one core\n", 100 * (b - a) / hz / 60 }'
grep VmRSS /proc/$agent_pid/status
