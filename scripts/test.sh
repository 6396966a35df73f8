#!/usr/bin/env bash
# The test command behind `make test`: every test of the workspace (unit, property, eBPF through
# BPF_PROG_TEST_RUN, real traffic in network namespaces), then one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp /tmp/vigil-test.XXXXXX)
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     END { printf "vigil: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
