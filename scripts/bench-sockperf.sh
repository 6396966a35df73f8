#!/usr/bin/env bash
# TCP request/response latency between two pods on two nodes (sockperf ping-pong), measured in
# one run: no program; Vigil with 10,000 rules; the same 10,000 rules as an iptables chain
# (naive, and with the usual ESTABLISHED shortcut first). Run as root after
# `cargo build --release --workspace --bins`; prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
DURATION=${DURATION:-10}
RULES=${RULES:-10000}
STATE=$(mktemp -d /tmp/vigil-sockperf.XXXXXX)
BPFFS=/sys/fs/bpf/vigil-sockperf-$$
command -v sockperf >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q sockperf; }

agents=()
server=
cleanup() {
  for pid in "${agents[@]}" $server; do kill "$pid" 2>/dev/null || true; done
  for pid in "${agents[@]}" $server; do wait "$pid" 2>/dev/null || true; done
  for node in node-1 node-2; do "$BIN/node-agent" --node "$node" --state "$STATE" --bpffs "$BPFFS" --uninstall >/dev/null 2>&1 || true; done
  rm -rf "$BPFFS"
  "$BIN/lab" down --state "$STATE" >/dev/null 2>&1 || true
  rm -rf "$STATE"
}
trap cleanup EXIT

cat > "$STATE/topology.yaml" <<'TOPO'
nodes: [{name: node-1}, {name: node-2}]
namespaces: [{name: bench}]
pods:
  - {name: client, namespace: bench, node: node-1, labels: {app: client}}
  - {name: server, namespace: bench, node: node-2, labels: {app: server}}
TOPO
"$BIN/lab" up "$STATE/topology.yaml" --state "$STATE" --prefix "sp$(printf %04x $((RANDOM)))" >/dev/null
SERVER_IP=$(python3 -c "import json;print([i for i in json.load(open('$STATE/lab.json'))['pods']['bench/server']['ips'] if ':' not in i][0])")
CLIENT_IP=$(python3 -c "import json;print([i for i in json.load(open('$STATE/lab.json'))['pods']['bench/client']['ips'] if ':' not in i][0])")
NODE2_NS=$(python3 -c "import json;print(json.load(open('$STATE/lab.json'))['nodes']['node-2']['netns'])")

"$BIN/lab" exec --state "$STATE" bench/server -- sockperf server --tcp -i 0.0.0.0 -p 11111 >"$STATE/server.log" 2>&1 &
server=$!
sleep 1

measure() { # prints "avg p50 p99" in microseconds
  "$BIN/lab" exec --state "$STATE" bench/client -- sockperf ping-pong --tcp -i "$SERVER_IP" -p 11111 -t "$DURATION" 2>&1 |
    python3 -c '
import re,sys
t=sys.stdin.read()
avg=re.search(r"avg-latency=([0-9.]+)",t).group(1)
p50=re.search(r"percentile 50\.000 = *([0-9.]+)",t).group(1)
p99=re.search(r"percentile 99\.000 = *([0-9.]+)",t).group(1)
print(avg,p50,p99)'
}

# The same 10,000 rules for both: each admits one /32 that is not the client, on the port.
python3 - "$RULES" "$CLIENT_IP" > "$STATE/policy.yaml" <<'PY'
import sys
n, client = int(sys.argv[1]), sys.argv[2]
print("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bench, namespace: bench}")
print("spec:\n  podSelector: {matchLabels: {app: server}}\n  policyTypes: [Ingress]\n  ingress:")
for i in range(n - 1):
    print(f"    - from: [{{ipBlock: {{cidr: 172.{16 + i // 65536}.{i // 256 % 256}.{i % 256}/32}}}}]\n      ports: [{{port: 11111}}]")
print("    - from: [{podSelector: {matchLabels: {app: client}}}]\n      ports: [{port: 11111}]")
PY
python3 - "$RULES" "$CLIENT_IP" "$SERVER_IP" > "$STATE/iptables.rules" <<'PY'
import sys
n, client, server = int(sys.argv[1]), sys.argv[2], sys.argv[3]
print("*filter\n:VIGILBENCH - [0:0]")
for i in range(n - 1):
    print(f"-A VIGILBENCH -s 172.{16 + i // 65536}.{i // 256 % 256}.{i % 256}/32 -p tcp --dport 11111 -j ACCEPT")
print(f"-A VIGILBENCH -s {client}/32 -p tcp --dport 11111 -j ACCEPT")
print("-A VIGILBENCH -j DROP")
print(f"-A FORWARD -d {server}/32 -j VIGILBENCH")
print("COMMIT")
PY

start_agents() {
  for node in node-1 node-2; do
    "$BIN/node-agent" --node "$node" --state "$STATE" --bpffs "$BPFFS" --listen 127.0.0.1:0 --metrics none \
      >>"$STATE/agent-$node.log" 2>&1 &
    agents+=($!)
  done
  for node in node-1 node-2; do
    for _ in $(seq 300); do grep -qs '"generation": [1-9]' "$STATE/status/$node.json" && break; sleep 0.1; done
  done
}
stop_agents() {
  for pid in "${agents[@]}"; do kill "$pid"; done
  for pid in "${agents[@]}"; do wait "$pid" 2>/dev/null || true; done
  agents=()
  for node in node-1 node-2; do "$BIN/node-agent" --node "$node" --state "$STATE" --bpffs "$BPFFS" --uninstall >/dev/null 2>&1; done
  rm -rf "$STATE/status"
}
mkdir -p "$STATE/policies"
cp "$STATE/policy.yaml" "$STATE/policies/"

# Interleaved rounds, so drifts of the machine hit every setup alike; medians are reported.
declare -A results
for round in $(seq "${ROUNDS:-3}"); do
  results[none]+="$(measure);"
  start_agents
  results[vigil]+="$(measure);"
  stop_agents
  ip netns exec "$NODE2_NS" iptables-restore < "$STATE/iptables.rules"
  results[naive]+="$(measure);"
  ip netns exec "$NODE2_NS" iptables -I FORWARD 1 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  results[shortcut]+="$(measure);"
  ip netns exec "$NODE2_NS" iptables -F FORWARD
  ip netns exec "$NODE2_NS" iptables -F VIGILBENCH
  ip netns exec "$NODE2_NS" iptables -X VIGILBENCH
done

median() { # "a b c;a b c;..." column -> median
  python3 -c "import statistics,sys; rows=[r.split() for r in sys.argv[1].split(';') if r]; print(' '.join(f'{statistics.median(float(r[i]) for r in rows):.2f}' for i in range(3)))" "$1"
}
base=$(median "${results[none]}")
echo "sockperf ping-pong, TCP, ${DURATION}s per measurement, ${ROUNDS:-3} interleaved rounds (median), pod on node-1 -> pod on node-2, $RULES rules"
echo
echo "| setup | avg us | p50 us | p99 us | avg vs no program |"
echo "|---|---|---|---|---|"
for name in none vigil naive shortcut; do
  set -- $(median "${results[$name]}")
  label=$(case $name in none) echo "no program";; vigil) echo "Vigil eBPF, $RULES rules";; naive) echo "iptables chain, $RULES rules";; shortcut) echo "iptables, ESTABLISHED first + $RULES rules";; esac)
  echo "| $label | $1 | $2 | $3 | $(python3 -c "print(f'{$1/${base%% *}:.3f}x')") |"
done
