#!/usr/bin/env bash
# Installs what Vigil needs on a Debian 12 machine, skipping what is already there.
# Used by `make demo`, `make test` and .ci/run. Safe to run repeatedly.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
have clang-19 || need_apt+=(clang-19 llvm-19)
[ -f /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
[ -f /usr/include/linux/bpf.h ] || need_apt+=(linux-libc-dev)
have bpftool || need_apt+=(bpftool)
have ip || need_apt+=(iproute2)
[ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
have iptables || need_apt+=(iptables)
have sockperf || need_apt+=(sockperf)
have sysctl || need_apt+=(procps)
have curl || need_apt+=(curl)
# The storage tests run against a real ClickHouse (Debian's 18.16); scripts/clickhouse.sh starts it.
have clickhouse-server || need_apt+=(clickhouse-server)
have clickhouse-client || need_apt+=(clickhouse-client)
# The dashboard (web/) builds with Node.js and npm; its browser tests drive Debian's Chromium.
have node || need_apt+=(nodejs)
have npm || need_apt+=(npm)
have chromium || need_apt+=(chromium)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust 1.95 (rustup) first" >&2
  exit 1
fi

# The agent pins maps and links on a bpffs.
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  mount -t bpf bpf /sys/fs/bpf
fi

# The dashboard: npm ci when node_modules is missing or older than the lock file, then a
# type-checked build into web/dist when it is missing or older than any of its sources.
web=$(cd "$(dirname "$0")/.." && pwd)/web
node_ok=$(node -e 'const [a, b] = process.versions.node.split(".").map(Number); console.log(a > 20 || (a === 20 && b >= 19) ? 1 : 0)' 2>/dev/null || echo 0)
if [ "$node_ok" != 1 ]; then
  echo "setup: the dashboard needs Node.js >= 20.19 (found $(node --version 2>/dev/null || echo none)); web/ not built" >&2
else
  if [ ! -f "$web/node_modules/.package-lock.json" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
    echo "setup: npm ci in web/"
    (cd "$web" && npm ci --no-audit --no-fund)
  fi
  if [ ! -f "$web/dist/index.html" ] || [ -n "$(find "$web/src" "$web/index.html" "$web/package-lock.json" "$web/vite.config.ts" "$web/tsconfig.json" -newer "$web/dist/index.html" -print -quit)" ]; then
    echo "setup: building the dashboard into web/dist"
    (cd "$web" && npm run build)
  fi
fi
