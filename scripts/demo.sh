#!/usr/bin/env bash
# The main job in one command (`make demo`): a two-node lab of network-namespace pods, one
# node-agent per node enforcing the seed policies in eBPF, the relay storing every flow in
# SQLite, the dashboard (ui-server) and traffic that hits the policies, until Ctrl-C, which
# removes every namespace, interface, pinned map and process this script started.
#
# Settings (environment), so that a test can run a demo beside another one:
#   VIGIL_DEMO_STATE         state folder (lab, manifests, status, flows.db, logs)  /tmp/vigil-demo
#   VIGIL_DEMO_PREFIX        prefix of every namespace and interface (2-7 [a-z0-9])  vgdemo
#   VIGIL_DEMO_BPFFS         where the agents pin maps and links (on a bpffs)    /sys/fs/bpf/vigil-demo
#   VIGIL_DEMO_AGENT_PORT    node-1's observer; node-2's is this + 2 (0: free ports)     4244
#   VIGIL_DEMO_METRICS_PORT  node-1's /metrics; node-2's is this + 1 (0: free ports)     9965
#   VIGIL_DEMO_RELAY_PORT    the relay's observer                                         4245
#   VIGIL_DEMO_RELAY_METRICS the relay's /metrics                                         9967
#   VIGIL_DEMO_UI_PORT       the dashboard                                                8080
#   VIGIL_BIN                a folder of already built binaries (e.g. target/debug): no
#                            setup and no build step                                    (unset)
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${VIGIL_DEMO_STATE:-/tmp/vigil-demo}
PREFIX=${VIGIL_DEMO_PREFIX:-vgdemo}
BPFFS=${VIGIL_DEMO_BPFFS:-/sys/fs/bpf/vigil-demo}
AGENT_PORT=${VIGIL_DEMO_AGENT_PORT:-4244}
METRICS_PORT=${VIGIL_DEMO_METRICS_PORT:-9965}
RELAY_PORT=${VIGIL_DEMO_RELAY_PORT:-4245}
RELAY_METRICS=${VIGIL_DEMO_RELAY_METRICS:-9967}
UI_PORT=${VIGIL_DEMO_UI_PORT:-8080}
TOPOLOGY=lab/topologies/demo.yaml
NODES=(node-1 node-2)
RELAY=127.0.0.1:$RELAY_PORT
UI=http://127.0.0.1:$UI_PORT

if [ -n "${VIGIL_BIN:-}" ]; then
  BIN=$VIGIL_BIN
else
  BIN=target/release
  bash scripts/setup.sh
  cargo build --release --workspace --bins
fi
for tool in lab node-agent relay ui-server observe; do
  [ -x "$BIN/$tool" ] || { echo "demo: $BIN/$tool is missing (cargo build --workspace --bins)" >&2; exit 1; }
done

# The dashboard's files. scripts/setup.sh builds them when stale; without it (VIGIL_BIN), or
# when that was not possible, build them here if npm is there. The API works without them.
if [ ! -f web/dist/index.html ] && command -v npm >/dev/null 2>&1; then
  echo "demo: building the dashboard into web/dist"
  (cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build) ||
    echo "demo: the dashboard did not build; its API still answers on $UI/api/v1/" >&2
fi

pidfile=$STATE/demo.pids
pids=()
# A process's start time (field 22 of /proc/PID/stat), to tell it from a later one with its pid.
start_time() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
started() { # started PID: a process to stop, here and (pid file) in a later run
  pids+=("$1")
  echo "$1 $(start_time "$1")" >>"$pidfile"
}

# Stops the processes an earlier run recorded, if they still run (same pid, same start time).
stop_recorded() {
  [ -f "$pidfile" ] || return 0
  while read -r pid start; do
    if [ -n "$start" ] && [ "$(start_time "$pid")" = "$start" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done <"$pidfile"
  rm -f "$pidfile"
}

remove_all() {
  for node in "${NODES[@]}"; do
    "$BIN/node-agent" --node "$node" --state "$STATE" --bpffs "$BPFFS" --uninstall >/dev/null 2>&1 || true
  done
  rm -rf "$BPFFS"
  "$BIN/lab" down --state "$STATE" >/dev/null || true
}

cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -f "$pidfile"
  remove_all
  echo "demo: everything removed"
}

# A previous run that was killed hard: stop what it started and remove what it left.
mkdir -p "$STATE"
stop_recorded
remove_all
trap cleanup INT TERM EXIT
mkdir -p "$STATE/policies" "$STATE/logs"
rm -f "$STATE"/policies/*.yaml "$STATE"/flows-*.jsonl "$STATE"/status/*.json
rm -f "$STATE"/flows.db "$STATE"/flows.db-wal "$STATE"/flows.db-shm

"$BIN/lab" up "$TOPOLOGY" --state "$STATE" --prefix "$PREFIX"
cp demo/policies/*.yaml "$STATE/policies/"

port() { # port BASE STEP INDEX: BASE + STEP * INDEX, or 0 (a free port) when BASE is 0
  if [ "$1" = 0 ]; then echo 0; else echo $(($1 + $2 * $3)); fi
}

# One agent per node: observers on 4244 and 4246, metrics on 9965 and 9966 by default.
i=0
for node in "${NODES[@]}"; do
  "$BIN/node-agent" --node "$node" --state "$STATE" --bpffs "$BPFFS" \
    --listen "127.0.0.1:$(port "$AGENT_PORT" 2 $i)" --metrics "127.0.0.1:$(port "$METRICS_PORT" 1 $i)" \
    --flow-log "$STATE/flows-$node.jsonl" >"$STATE/logs/agent-$node.log" 2>&1 &
  started $!
  i=$((i + 1))
done

for node in "${NODES[@]}"; do
  for _ in $(seq 100); do
    [ -s "$STATE/status/$node.json" ] && grep -q '"generation": [1-9]' "$STATE/status/$node.json" && break
    sleep 0.1
  done
done

# The relay: every node in one stream (it finds the agents in status/*.json), every flow and
# policy hit stored in SQLite.
"$BIN/relay" --state "$STATE" --listen "$RELAY" --store "sqlite://$STATE/flows.db" \
  --metrics "127.0.0.1:$RELAY_METRICS" >"$STATE/logs/relay.log" 2>&1 &
started $!
for _ in $(seq 100); do
  [ -f "$STATE/flows.db" ] && "$BIN/observe" status --server "$RELAY" >/dev/null 2>&1 && break
  sleep 0.1
done

# The dashboard: live flows from the relay, history from the same SQLite file.
"$BIN/ui-server" --relay "$RELAY" --store "sqlite://$STATE/flows.db" --state "$STATE" \
  --listen "127.0.0.1:$UI_PORT" --web web/dist >"$STATE/logs/ui-server.log" 2>&1 &
started $!
for _ in $(seq 100); do
  curl -fs -o /dev/null "$UI/healthz" 2>/dev/null && break
  sleep 0.1
done

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
started $!

OBSERVE="$BIN/observe"
QUERY="$OBSERVE query --store sqlite://$STATE/flows.db"
[ "$RELAY_PORT" = 4245 ] || OBSERVE="$OBSERVE --server $RELAY"
# node-1's addresses as its agent bound them (free ports when asked for port 0).
status_field() { sed -n "s/.*\"$1\": \"\([^\"]*\)\".*/\1/p" "$STATE/status/node-1.json" | head -n 1; }
agent1=$(status_field observer)
metrics1=$(status_field metrics)
cat <<MSG

Vigil demo is running: the lab of $TOPOLOGY, one node-agent per node, policies from demo/policies/.

  The dashboard (flows live and history, drops, policies, service map, SQL console, nodes):
    $UI/
  Watch verdicts live from every node (the relay on $RELAY), with the policy behind each one:
    $OBSERVE -f --print-policy-names
    $OBSERVE --verdict DROPPED --last 20
    $OBSERVE --verdict AUDIT --last 5 --print-policy-names
    $OBSERVE --policy deny-ssh -o json --last 5
    $OBSERVE status                      # one node's agent: --server $agent1
  History in SQL (every flow and policy hit, in $STATE/flows.db):
    $QUERY --examples
    $QUERY \\
      "SELECT policy_name, action, enforcement, count(*) AS hits FROM policy_hits GROUP BY 1, 2, 3 ORDER BY hits DESC"
    $QUERY \\
      "SELECT src_pod, dst_pod, dst_port, count(*) AS drops FROM flows WHERE verdict = 'DROPPED' GROUP BY 1, 2, 3 ORDER BY drops DESC LIMIT 10"
  The dashboard's API: curl -s '$UI/api/v1/flows?verdict=DROPPED&limit=5'
  Prometheus metrics: curl -s $metrics1/metrics
  The same flows as JSON lines, per node: tail -f $STATE/flows-node-*.jsonl
  What each agent enforces (generation, endpoints, refused files, warnings, counters):
    cat $STATE/status/node-1.json
  Try a policy change; it applies to new connections within a poll interval:
    cp demo/broken/01-calico-gnp-deny-ssh.yaml $STATE/policies/
    (refused with its line and a "did you mean projectcalico.org/v3?"; see status/*.json)
  Run traffic yourself:
    $BIN/lab exec --state $STATE ops/ssh-client -- $BIN/lab probe tcp 10.200.2.20 22
  Logs: $STATE/logs/

Ctrl-C stops the demo and removes everything it created.
MSG
wait
