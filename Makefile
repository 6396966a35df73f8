# The README's two commands: `make demo` and `make test`. Both install what they need first.
.PHONY: setup build test demo bench lint

setup:
	@bash scripts/setup.sh

build: setup
	cargo build --workspace --bins

# Unit, property, eBPF (BPF_PROG_TEST_RUN), real-namespace enforcement tests and the storage
# tests against a real ClickHouse server (started here when none is listening). Needs root.
test: build
	@bash scripts/clickhouse.sh start
	@bash scripts/test.sh

# The lab, one agent per node, the seed policies and traffic; Ctrl-C removes everything.
demo:
	@bash scripts/demo.sh

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Datapath ns/packet (BPF_PROG_TEST_RUN), event enrichment rate, policy compile time,
# pod-to-pod latency vs iptables.
bench: setup
	cargo build --workspace --release --bins
	cargo bench -p vigil-node-agent --bench datapath
	cargo bench -p vigil-node-agent --bench observe
	cargo run --release -p vigil-policy --example compile_bench
	bash scripts/bench-sockperf.sh
	bash scripts/clickhouse.sh start
	cargo bench -p vigil-storage --bench insert
	cargo bench -p vigil-relay --bench merge
	cargo bench -p vigil-relay --bench writer
	cargo bench -p vigil-ui-server --bench api
