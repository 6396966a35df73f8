#!/usr/bin/env bash
# Starts a local ClickHouse server (Debian's clickhouse-server) in the background for the storage
# tests, unless something already answers on 127.0.0.1:8123. Usage: scripts/clickhouse.sh start
set -euo pipefail

ping() { [ "$(curl -s --max-time 2 http://127.0.0.1:8123/ping 2>/dev/null)" = "Ok." ]; }

case "${1:-}" in
start)
  if ping; then exit 0; fi
  if ! command -v clickhouse-server >/dev/null 2>&1; then
    echo "clickhouse.sh: clickhouse-server is not installed (scripts/setup.sh installs it)" >&2
    exit 1
  fi
  log=/var/log/clickhouse-server
  mkdir -p /var/lib/clickhouse "$log" /var/run/clickhouse-server
  chown -R clickhouse:clickhouse /var/lib/clickhouse "$log" /var/run/clickhouse-server
  # No systemd in CI containers: run the server directly, detached, as its own user.
  setsid runuser -u clickhouse -- clickhouse-server --config-file=/etc/clickhouse-server/config.xml \
    >"$log/stdout.log" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    if ping; then echo "clickhouse: listening on 127.0.0.1:8123"; exit 0; fi
    sleep 0.5
  done
  echo "clickhouse.sh: the server did not answer on 127.0.0.1:8123/ping within 60 s; see $log" >&2
  tail -n 20 "$log"/*.log >&2 || true
  exit 1
  ;;
*)
  echo "usage: scripts/clickhouse.sh start" >&2
  exit 2
  ;;
esac
