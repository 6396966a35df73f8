#!/usr/bin/env bash
# Observe end to end: UDP floods in a lab pod -> eBPF datapath events -> node-agent (decode,
# enrich, flow ring, Observer gRPC) -> `observe -f -o json`, at several sender rates; for each
# rate the flows produced (the datapath's own counters), delivered to observe, and reported lost.
# Also the agent's memory (VmRSS/VmHWM) once its flow ring is full (default --max-flows 65536).
#
# Run as root after `cargo build --release --workspace --bins`; prints Markdown tables.
#   RATES="10000 20000 25000 30000 40000 50000 100000 max"
#                       sender datagrams/s per step ("max": as fast as the sender goes)
#   DURATION=10         seconds of sending per step
#   RING_BUFFER=BYTES   --ring-buffer-size of the agent (default: the agent's own, 16 MiB)
#   EVENTS_QUEUE=N      --events-queue of the agent (default: the agent's own, 65536)
#   PROFILE=1           after the steps, one more step at PROFILE_RATE (default 20000) under
#                       `perf record` (agent and observe) and `strace -c` (observe); not in the table
#   KEEP=1              keep the state folder (logs, status, rows.jsonl, profiles)
#
# A step passes ("sustained, zero loss") when every event the datapath wrote reached observe as a
# flow, nothing was reported lost, and observe had caught up within 0.5 s of the sender stopping
# (so the agent's queues did not merely absorb a deficit for the length of the step).
#
# One datagram sender -> receiver (both pods on node-1, aggregation none) crosses two endpoint
# interfaces, so the datapath writes two events for it: flows/s = 2 x datagrams/s. The receiver
# holds UDP port 9 with a tiny receive buffer and never reads: datagrams are dropped at the socket,
# without ICMP errors and without spending CPU on a listener.
#
# observe's output goes to a file on tmpfs (/dev/shm), opened O_APPEND and truncated between steps:
# as cheap as /dev/null for observe (the JSON is rendered and written in full), and the lines and
# lost_events objects can be counted once the step is over, when counting no longer competes with
# the pipeline for the two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/target/release
RATES=${RATES:-"10000 20000 25000 30000 40000 50000 100000 max"}
DURATION=${DURATION:-10}
RING_BUFFER=${RING_BUFFER:-}
EVENTS_QUEUE=${EVENTS_QUEUE:-}
PROFILE=${PROFILE:-0}
PROFILE_RATE=${PROFILE_RATE:-20000}
MAX_FLOWS=65536 # the agent's default, passed explicitly so the check below cannot drift from it

[ "$(id -u)" = 0 ] || { echo "bench-observe: run as root" >&2; exit 1; }
for b in lab node-agent observe; do
  [ -x "$BIN/$b" ] || { echo "bench-observe: $BIN/$b missing: cargo build --release --workspace --bins" >&2; exit 1; }
done
PY=$(python3 -c 'import sys; print(sys.executable)') # the real interpreter, not a pyenv shim

STATE=$(mktemp -d /tmp/vigil-obsbench.XXXXXX)
BPFFS=/sys/fs/bpf/vigil-obsbench-$$
OUT=$(mktemp /dev/shm/vigil-obsbench-$$.XXXXXX.jsonl)
PREFIX=ob$(printf %05x $(( ($$ * 7919 + RANDOM) % 1048576 )))
agent= observe= sink= sender=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in $sender $observe $sink $agent; do kill "$pid" 2>/dev/null || true; done
  for pid in $sender $observe $sink $agent; do wait "$pid" 2>/dev/null || true; done
  "$BIN/node-agent" --node node-1 --state "$STATE" --bpffs "$BPFFS" --uninstall >/dev/null 2>&1 || true
  rm -rf "$BPFFS"
  "$BIN/lab" down --state "$STATE" >/dev/null 2>&1 || true
  rm -f "$OUT"
  if [ "${KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
    echo "bench-observe: state kept in $STATE" >&2
  else
    rm -rf "$STATE"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() { echo "bench-observe: $*" >&2; exit 1; }

# ---- helpers (python3, stdlib only) ----
cat > "$STATE/sender.py" <<'PY'
# sender.py DST PORT RATE DURATION: RATE datagrams/s (0 = as fast as possible) for DURATION s,
# paced in 1 ms slices; prints {"sent", "errors", "elapsed", "cpu"} as JSON.
import itertools, json, os, socket, sys, time
dst, port, rate, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((dst, port))
send, payload, repeat = s.send, b"vigil-obsbench....", itertools.repeat
sent = errors = 0
start = time.perf_counter()
end = start + duration
while True:
    now = time.perf_counter()
    if now >= end:
        break
    due = int((now - start) * rate) + 1 if rate > 0 else sent + 512
    if due <= sent:
        time.sleep(0.0002)
        continue
    n = min(due - sent, 4096)
    for _ in repeat(None, n):
        try:
            send(payload)
        except OSError:
            errors += 1
    sent += n
elapsed = time.perf_counter() - start
ru = os.times()
print(json.dumps({"sent": sent - errors, "errors": errors, "elapsed": elapsed,
                  "cpu": ru.user + ru.system}))
PY
cat > "$STATE/sink.py" <<'PY'
# sink.py: hold UDP port 9 with the smallest receive buffer and never read.
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
s.bind(("0.0.0.0", 9))
while True:
    time.sleep(3600)
PY
cat > "$STATE/measure.py" <<'PY'
import json, os, sys, time
TCK = os.sysconf("SC_CLK_TCK")

def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0

def threads(pid):
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            out[f"{name}/{tid}"] = ticks(f"{pid}/task/{tid}")
    except OSError:
        pass
    return out

def cpu_total():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4], v[5] + v[6]  # total, idle+iowait, irq+softirq

def memory(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0])  # kB
    return out

def snap(status, out, agent, observe):
    while True:  # the agent replaces the file atomically; retry a torn read anyway
        try:
            with open(status) as f:
                st = json.load(f)
            break
        except (OSError, ValueError):
            time.sleep(0.05)
    total, idle, irq = cpu_total()
    return {"t": time.time(), "events": st["datapath"]["events"],
            "events_lost": st["datapath"]["events_lost"], "packets": st["datapath"]["packets"],
            "agent_counters": st["events"], "size": os.path.getsize(out),
            "agent": ticks(agent), "agent_threads": threads(agent), "observe": ticks(observe),
            "agent_rss_kib": memory(agent).get("VmRSS", 0),
            "cpu_total": total, "cpu_idle": idle, "cpu_irq": irq}

def drain(out, quiet=1.0, limit=120.0):
    """Waits until the output file stops growing for `quiet` s; returns when it last grew."""
    last_size, last_change = os.path.getsize(out), time.time()
    deadline = time.time() + limit
    while time.time() - last_change < quiet and time.time() < deadline:
        time.sleep(0.05)
        size = os.path.getsize(out)
        if size != last_size:
            last_size, last_change = size, time.time()
    return last_change

def count(out):
    lines = lost_lines = 0
    lost = {}
    with open(out, "rb") as f:
        while True:
            chunk = f.read(1 << 24)
            if not chunk:
                break
            lines += chunk.count(b"\n")
    with open(out, "rb") as f:
        for line in f:
            if b'"lost_events"' in line and b'"flow"' not in line:
                ev = json.loads(line)["lost_events"]
                src = ev.get("source", "UNKNOWN_LOST_EVENT_SOURCE")
                lost[src] = lost.get(src, 0) + int(ev.get("num_events_lost", 0))
                lost_lines += 1
    return lines, lost_lines, lost

cmd = sys.argv[1]
if cmd == "snap":
    print(json.dumps(snap(*sys.argv[2:6])))
elif cmd == "drain":
    print(drain(sys.argv[2]))
elif cmd == "lines":
    print(count(sys.argv[2])[0])
elif cmd == "memory":
    print(json.dumps(memory(sys.argv[2])))
elif cmd == "row":
    # row RATE_LABEL A.json B.json C.json SENDER.json LAST_GROWTH OUT DURATION
    label, a, b, c, s = sys.argv[2], *(json.load(open(p)) for p in sys.argv[3:7])
    last_growth, out = float(sys.argv[7]), sys.argv[8]
    lines, lost_lines, lost = count(out)
    flows = lines - lost_lines
    produced = c["events"] - a["events"]
    rb_lost = c["events_lost"] - a["events_lost"]
    queue_dropped = c["agent_counters"]["queue_dropped"] - a["agent_counters"]["queue_dropped"]
    lost_total = sum(lost.values())
    window = b["t"] - a["t"]
    bytes_per_line = (c["size"] - a["size"]) / lines if lines else 0
    delivered_by_end = (b["size"] - a["size"]) / bytes_per_line if bytes_per_line else 0
    span = max(last_growth - a["t"], window)
    dticks = max(b["cpu_total"] - a["cpu_total"], 1)
    ncpu = os.cpu_count()
    pct = lambda t0, t1: 100.0 * (t1 - t0) / TCK / window
    busiest = max(((pct(a["agent_threads"].get(k, 0), v), k) for k, v in b["agent_threads"].items()),
                  default=(0.0, "-"))
    row = {
        "rate": label,
        "sent_pps": s["sent"] / s["elapsed"],
        "produced": produced,
        "produced_per_s": produced / window,
        "datapath_lost": rb_lost,
        "delivered": flows,
        "lost_reported": lost_total,
        "lost_by_source": lost,
        "queue_dropped": queue_dropped,
        "delivered_per_s": flows / span,
        "backlog_at_end": max(0, round(produced - delivered_by_end - lost_total)) if lines else produced,
        "drain_s": max(0.0, last_growth - b["t"]),
        # Every event the datapath tried to write is a delivered flow or counted in a notice.
        "accounted": flows + lost_total == produced + rb_lost,
        "zero_loss": rb_lost == 0 and lost_total == 0 and flows == produced and produced > 0,
        "sustained": rb_lost == 0 and lost_total == 0 and flows == produced and produced > 0
                     and last_growth - b["t"] <= 0.5,
        "agent_cpu": pct(a["agent"], b["agent"]),
        "agent_busiest_thread": [round(busiest[0]), busiest[1].split("/")[0]],
        "observe_cpu": pct(a["observe"], b["observe"]),
        "sender_cpu": 100.0 * s["cpu"] / s["elapsed"],
        "idle_pct": 100.0 * (b["cpu_idle"] - a["cpu_idle"]) / dticks,
        "irq_pct_of_machine": 100.0 * (b["cpu_irq"] - a["cpu_irq"]) / dticks,
        "ncpu": ncpu,
        "json_bytes_per_line": round(bytes_per_line),
        "agent_rss_kib_after": c["agent_rss_kib"],
    }
    print(json.dumps(row))
PY
M() { "$PY" "$STATE/measure.py" "$@"; }

# ---- the lab: one node, two pods, a policy naming the traffic ----
cat > "$STATE/topology.yaml" <<'TOPO'
nodes: [{name: node-1}]
namespaces: [{name: bench, labels: {team: bench}}]
pods:
  - {name: sender, namespace: bench, node: node-1, labels: {app: sender, tier: load}}
  - {name: receiver, namespace: bench, node: node-1, labels: {app: receiver, tier: sink},
     ports: [{name: discard, port: 9, protocol: UDP}]}
TOPO
"$BIN/lab" up "$STATE/topology.yaml" --state "$STATE" --prefix "$PREFIX" >"$STATE/lab-up.log" 2>&1 ||
  { cat "$STATE/lab-up.log" >&2; die "lab up failed"; }
read -r SENDER_NS RECEIVER_NS RECEIVER_IP < <("$PY" - "$STATE/lab.json" <<'PY'
import json, sys
lab = json.load(open(sys.argv[1]))
s, r = lab["pods"]["bench/sender"], lab["pods"]["bench/receiver"]
print(s["netns"], r["netns"], [i for i in r["ips"] if ":" not in i][0])
PY
)
mkdir -p "$STATE/policies"
cat > "$STATE/policies/bench.yaml" <<'POL'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: receiver-from-sender, namespace: bench}
spec:
  podSelector: {matchLabels: {app: receiver}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {app: sender}}}]
      ports: [{port: discard, protocol: UDP}]
POL

ip netns exec "$RECEIVER_NS" "$PY" "$STATE/sink.py" >"$STATE/sink.log" 2>&1 &
sink=$!

# ---- the agent ----
tuning=()
[ -n "$RING_BUFFER" ] && tuning+=(--ring-buffer-size "$RING_BUFFER")
[ -n "$EVENTS_QUEUE" ] && tuning+=(--events-queue "$EVENTS_QUEUE")
"$BIN/node-agent" --node node-1 --state "$STATE" --bpffs "$BPFFS" --aggregation none \
  --listen 127.0.0.1:0 --metrics none --max-flows "$MAX_FLOWS" "${tuning[@]}" >"$STATE/agent.log" 2>&1 &
agent=$!
STATUS=$STATE/status/node-1.json
ADDR=
for _ in $(seq 300); do
  kill -0 "$agent" 2>/dev/null || { cat "$STATE/agent.log" >&2; die "node-agent exited"; }
  if [ -s "$STATUS" ]; then
    ADDR=$("$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); print((s["observer"] or "") if s["generation"] >= 1 and len(s["endpoints"]) == 2 else "")' "$STATUS" 2>/dev/null || true)
    [ -n "$ADDR" ] && break
  fi
  sleep 0.1
done
[ -n "$ADDR" ] || { cat "$STATE/agent.log" "$STATUS" >&2 2>/dev/null; die "the agent did not attach both pods and listen within 30 s"; }

# ---- observe, following, JSON ----
"$BIN/observe" --server "$ADDR" -f -o json >>"$OUT" 2>"$STATE/observe.err" &
observe=$!

send() { # RATE(0 = max) DURATION -> sender JSON on stdout
  ip netns exec "$SENDER_NS" "$PY" "$STATE/sender.py" "$RECEIVER_IP" 9 "$1" "$2" &
  sender=$!
  wait "$sender"
  sender=
}
alive() {
  kill -0 "$agent" 2>/dev/null || { cat "$STATE/agent.log" >&2; die "node-agent exited"; }
  kill -0 "$observe" 2>/dev/null || { cat "$STATE/observe.err" >&2; die "observe exited"; }
}

# Warm-up: routes, neighbours, conntrack, the gRPC stream; until observe prints what we send.
ok=
for _ in $(seq 20); do
  send 2000 0.1 >/dev/null
  sleep 0.3
  alive
  [ "$(M lines "$OUT")" -ge 200 ] && { ok=1; break; }
done
[ -n "$ok" ] || die "observe printed nothing for the warm-up traffic (see $STATE/observe.err)"
M drain "$OUT" >/dev/null
mem_empty=$(M memory "$agent")

# ---- fill the flow ring at a gentle rate, then read the agent's memory ----
: > "$OUT"
send 20000 $(( MAX_FLOWS / 40000 + 2 )) >/dev/null # 2 flows per datagram: well over MAX_FLOWS
M drain "$OUT" >/dev/null
sleep 0.5
"$BIN/observe" --server "$ADDR" status >"$STATE/server-status.txt"
ring=$(sed -n 's#^Current/Max Flows: \([0-9]*\)/\([0-9]*\).*#\1 \2#p' "$STATE/server-status.txt")
read -r num_flows max_flows <<<"$ring"
[ "$num_flows" -ge "$max_flows" ] && [ "$max_flows" = "$MAX_FLOWS" ] ||
  die "flow ring not full after the fill: $ring"
mem_full=$(M memory "$agent")
"$BIN/observe" --server "$ADDR" --last 1 -o json >"$STATE/sample-flow.json" # what a flow carries
trim() { # diagnostic (PROFILE=1): the agent's memory after malloc_trim(0), i.e. without what the
  # allocator holds but no longer uses; '{}' when not asked for
  if [ "$PROFILE" = 1 ] && command -v gdb >/dev/null; then
    gdb -p "$agent" -batch -ex 'call (int)malloc_trim(0)' >>"$STATE/malloc-trim.log" 2>&1 || true
    M memory "$agent"
  else
    echo '{}'
  fi
}
mem_full_trim=$(trim)

# ---- observe alone: the full ring as history (no follow, so no flush per line), JSON and compact ----
dump() { # FORMAT -> "wall user sys lines"
  local t
  t=$( { TIMEFORMAT='%R %U %S'; time "$BIN/observe" --server "$ADDR" --all -o "$1" >"$OUT.dump" 2>/dev/null; } 2>&1 )
  echo "$t $(wc -l <"$OUT.dump")"
  rm -f "$OUT.dump"
}
dump_json=$(dump json)
dump_compact=$(dump compact)

# ---- the rates ----
rows=()
for rate in $RATES; do
  alive
  r=$rate; [ "$rate" = max ] && r=0
  : > "$OUT"
  M snap "$STATUS" "$OUT" "$agent" "$observe" >"$STATE/a.json"
  send "$r" "$DURATION" >"$STATE/sender.json"
  M snap "$STATUS" "$OUT" "$agent" "$observe" >"$STATE/b.json"
  last=$(M drain "$OUT")
  sleep 0.6 # the status file is rewritten every 250 ms
  alive
  M snap "$STATUS" "$OUT" "$agent" "$observe" >"$STATE/c.json"
  row=$(M row "$rate" "$STATE/a.json" "$STATE/b.json" "$STATE/c.json" "$STATE/sender.json" "$last" "$OUT")
  echo "$row" >>"$STATE/rows.jsonl"
  echo "$row" >&2
  rows+=("$row")
  sleep 1
done

# ---- optional: where the time goes, at a rate observe keeps up with ----
if [ "$PROFILE" = 1 ]; then
  : > "$OUT"
  ( sleep 2
    perf record -F 499 --call-graph dwarf,16384 -o "$STATE/perf-observe.data" -p "$observe" -- sleep 4 >/dev/null 2>&1 &
    perf record -F 499 --call-graph dwarf,16384 -o "$STATE/perf-agent.data" -p "$agent" -- sleep 4 >/dev/null 2>&1 &
    timeout -s INT 2 strace -c -f -p "$observe" -o "$STATE/strace-observe.txt" >/dev/null 2>&1 &
    wait ) &
  profiler=$!
  send "$PROFILE_RATE" 8 >/dev/null
  wait "$profiler" || true
  M drain "$OUT" >/dev/null
  for who in observe agent; do
    for sort in dso dso,symbol; do
      perf report -i "$STATE/perf-$who.data" --no-children --stdio -g none --sort "$sort" 2>/dev/null |
        grep -E '^ +[0-9]' | sed -E 's/( +-)* *$//' | cut -c1-160 | head -40
      echo
    done >"$STATE/perf-$who.txt" || true
    # inclusive time by function of our own crates (where the allocations and copies come from)
    perf report -i "$STATE/perf-$who.data" --children --stdio -g none --sort symbol 2>/dev/null |
      grep -E '^ +[0-9]' | grep -E 'vigil|observe::|tonic|prost_reflect::dynamic::(serde|message)' |
      sed -E 's/( +-)* *$//' | cut -c1-170 | head -30 >"$STATE/perf-$who-inclusive.txt" || true
  done
  echo "bench-observe: profiles in $STATE/perf-*.txt, $STATE/strace-observe.txt" >&2
fi
mem_end=$(M memory "$agent")
mem_end_trim=$(trim)
"$BIN/observe" --server "$ADDR" status >"$STATE/server-status-end.txt"

# ---- report ----
"$PY" - "$STATE/rows.jsonl" "$mem_empty" "$mem_full" "$mem_end" "$DURATION" "${RING_BUFFER:-default}" "${EVENTS_QUEUE:-default}" "$num_flows" "$max_flows" "$dump_json" "$dump_compact" "$mem_full_trim" "$mem_end_trim" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
empty, full, end = (json.loads(a) for a in sys.argv[2:5])
duration, ring, queue, nf, mf = sys.argv[5:10]
dumps = {"json": sys.argv[10].split(), "compact": sys.argv[11].split()}
mib = lambda kb: f"{kb / 1024:.1f}"
print(f"observe -f -o json, {duration} s per rate, 1 agent (--aggregation none, --ring-buffer-size {ring},"
      f" --events-queue {queue}), 2 flows per datagram (sender egress + receiver ingress);"
      f" CPU % = share of one core during the sending window")
print()
print("| sender pps (target) | sent pps | flows produced | produced flows/s | datapath lost "
      "| delivered to observe | lost reported | delivered flows/s | backlog at sender end | drain s "
      "| agent CPU % (busiest thread) | observe CPU % | sender CPU % | machine idle % | agent RSS MiB after "
      "| sustained, zero loss |")
print("|" + "---|" * 16)
for r in rows:
    lost = r["lost_reported"]
    by = ", ".join(f"{k} {v}" for k, v in r["lost_by_source"].items())
    print(f"| {r['rate']} | {r['sent_pps']:,.0f} | {r['produced']:,} | {r['produced_per_s']:,.0f} "
          f"| {r['datapath_lost']:,} | {r['delivered']:,} | {lost:,}{' (' + by + ')' if by else ''} "
          f"| {r['delivered_per_s']:,.0f} | {r['backlog_at_end']:,} | {r['drain_s']:.1f} "
          f"| {r['agent_cpu']:.0f} ({r['agent_busiest_thread'][0]} {r['agent_busiest_thread'][1]}) "
          f"| {r['observe_cpu']:.0f} | {r['sender_cpu']:.0f} | {r['idle_pct']:.0f} "
          f"| {mib(r['agent_rss_kib_after'])} "
          f"| {'yes' if r['sustained'] else 'no, lagging' if r['zero_loss'] else 'no'} |")
ok = [r for r in rows if r["sustained"]]
print()
if ok:
    best = max(ok, key=lambda r: r["produced_per_s"])
    print(f"Highest zero-loss step: {best['produced_per_s']:,.0f} flows/s produced "
          f"({best['delivered_per_s']:,.0f} flows/s delivered, drain {best['drain_s']:.1f} s after the sender stopped).")
else:
    print("No step was loss-free.")
print(f"JSON line: about {rows[-1]['json_bytes_per_line']} bytes per flow.")
print()
print("observe alone, the full ring as history (`observe --all`, no follow):")
print()
print("| output | flows | wall s | observe CPU s (user+sys) | flows/s |")
print("|---|---|---|---|---|")
for k, (wall, user, sys_, lines) in dumps.items():
    print(f"| -o {k} | {int(lines):,} | {float(wall):.2f} | {float(user) + float(sys_):.2f} "
          f"| {int(lines) / max(float(wall), 1e-9):,.0f} |")
print()
print("| agent memory | VmRSS MiB | VmHWM MiB | RssAnon MiB | RssFile MiB | RssShmem MiB |")
print("|---|---|---|---|---|---|")
for label, m in (("started, after the warm-up (ring almost empty)", empty),
                 (f"ring full ({nf}/{mf} flows), after a gentle fill", full),
                 ("the same, after malloc_trim(0) (gdb, PROFILE=1)", json.loads(sys.argv[12])),
                 ("ring full, after every rate step", end),
                 ("the same, after malloc_trim(0) (gdb, PROFILE=1)", json.loads(sys.argv[13]))):
    if not m:
        continue
    print(f"| {label} | {mib(m['VmRSS'])} | {mib(m['VmHWM'])} | {mib(m['RssAnon'])} "
          f"| {mib(m['RssFile'])} | {mib(m['RssShmem'])} |")
PY
cp "$STATE/rows.jsonl" "${RESULTS:-/dev/null}" 2>/dev/null || true
