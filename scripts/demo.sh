#!/usr/bin/env bash
# The main job in one command (`make demo`): a two-node lab of network-namespace pods, one
# node-agent per node enforcing the seed policies in eBPF, and traffic that hits them, until
# Ctrl-C, which removes every namespace, pinned map and process this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${VIGIL_DEMO_STATE:-/tmp/vigil-demo}
BPFFS=/sys/fs/bpf/vigil-demo
BIN=target/release
TOPOLOGY=lab/topologies/demo.yaml

bash scripts/setup.sh
cargo build --release --workspace --bins

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for node in node-1 node-2; do
    "$BIN/node-agent" --node "$node" --state "$STATE" --bpffs "$BPFFS" --uninstall >/dev/null 2>&1 || true
  done
  rm -rf "$BPFFS"
  "$BIN/lab" down --state "$STATE" || true
  echo "demo: everything removed"
}
trap cleanup INT TERM EXIT

# A previous run that was killed hard: remove what it left.
"$BIN/lab" down --state "$STATE" >/dev/null 2>&1 || true
rm -rf "$BPFFS"
mkdir -p "$STATE/policies" "$STATE/logs"
rm -f "$STATE"/policies/*.yaml "$STATE"/flows-*.jsonl

"$BIN/lab" up "$TOPOLOGY" --state "$STATE" --prefix vgdemo
cp demo/policies/*.yaml "$STATE/policies/"

# One agent per node: observers on 4244 and 4246, metrics on 9965 and 9966.
port=0
for node in node-1 node-2; do
  "$BIN/node-agent" --node "$node" --state "$STATE" --bpffs "$BPFFS" \
    --listen "127.0.0.1:$((4244 + 2 * port))" --metrics "127.0.0.1:$((9965 + port))" \
    --flow-log "$STATE/flows-$node.jsonl" >"$STATE/logs/agent-$node.log" 2>&1 &
  pids+=($!)
  port=$((port + 1))
done

for node in node-1 node-2; do
  for _ in $(seq 100); do
    [ -s "$STATE/status/$node.json" ] && grep -q '"generation": [1-9]' "$STATE/status/$node.json" && break
    sleep 0.1
  done
done

# The relay: every node in one stream on :4245, every flow and policy hit stored in SQLite.
"$BIN/relay" --state "$STATE" --listen 127.0.0.1:4245 --store "sqlite://$STATE/flows.db" \
  >"$STATE/logs/relay.log" 2>&1 &
pids+=($!)

probe() { # probe POD tcp|udp ADDR PORT
  "$BIN/lab" exec --state "$STATE" "$1" -- "$BIN/lab" probe --timeout-ms 400 "$2" "$3" "$4" >/dev/null 2>&1 || true
}

traffic() {
  while true; do
    probe shop/frontend tcp 10.200.2.10 80      # allowed: CiliumNetworkPolicy allow-get-healthz
    probe shop/frontend tcp 10.200.2.11 80      # allowed: CiliumNetworkPolicy allow-healthz
    probe shop/frontend tcp 10.200.2.10 8080    # dropped: my-api admits port 80 only
    probe ops/ssh-client tcp 10.200.2.20 22     # dropped: GlobalNetworkPolicy security.deny-ssh
    probe ops/ssh-client tcp 10.200.1.11 22     # dropped: security.deny-ssh (same node)
    probe ops/ssh-client tcp 10.200.2.10 80     # allowed: CiliumClusterwideNetworkPolicy allow-get-status
    probe ops/ssh-client tcp 10.200.1.11 80     # audit: staged log-all-ingress would deny it
    probe ops/crawler udp 198.51.100.53 53      # allowed: allow-egress-to-domains (UDP 53)
    probe ops/crawler tcp 198.51.100.10 443     # dropped: domains are not enforced yet
    probe ops/mediabot udp 10.200.2.53 53       # allowed: CiliumNetworkPolicy fqdn (kube-dns)
    probe ops/mediabot tcp 198.51.100.40 443    # dropped: toFQDNs is not enforced yet
    probe shop/frontend tcp 10.200.2.20 5432    # allowed, logged by security.log-payments
    probe payments/tradingapp tcp 203.0.113.66 80  # allowed: GlobalNetworkPolicy customer (egress)
    sleep 1
  done
}
traffic &
pids+=($!)

cat <<MSG

Vigil demo is running: the lab of $TOPOLOGY, one node-agent per node, policies from demo/policies/.

  Watch verdicts live from every node (the relay on :4245), with the policy behind each one:
    $BIN/observe -f --print-policy-names
    $BIN/observe --verdict DROPPED --last 20
    $BIN/observe --policy deny-ssh -o json --last 5
    $BIN/observe status                      # one node's agent: --server 127.0.0.1:4244
  History in SQL (every flow and policy hit, in $STATE/flows.db):
    $BIN/observe query --store sqlite://$STATE/flows.db --examples
    $BIN/observe query --store sqlite://$STATE/flows.db \\
      "SELECT policy_name, action, enforcement, count(*) AS hits FROM policy_hits GROUP BY 1, 2, 3 ORDER BY hits DESC"
  Prometheus metrics: curl -s 127.0.0.1:9965/metrics
  The same flows as JSON lines, per node: tail -f $STATE/flows-node-*.jsonl
  What each agent enforces (generation, endpoints, refused files, warnings, counters):
    cat $STATE/status/node-1.json
  Try a policy change; it applies to new connections within a poll interval:
    cp demo/broken/01-calico-gnp-deny-ssh.yaml $STATE/policies/
    (refused with its line and a "did you mean projectcalico.org/v3?"; see status/*.json)
  Run traffic yourself:
    $BIN/lab exec --state $STATE ops/ssh-client -- $BIN/lab probe tcp 10.200.2.20 22

Ctrl-C stops the demo and removes everything it created.
MSG
wait
