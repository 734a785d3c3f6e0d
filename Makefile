# ProgLog — build, test and run. Every tool the project needs is installed by a target here, so a
# fresh machine needs only `make up` (a Kubernetes cluster running ProgLog) and `make test` (all tests).
#
# Build caches live outside the clone so CI on this machine stays fast.
CACHE_DIR        ?= $(HOME)/.cache/proglog
export CARGO_TARGET_DIR ?= $(CACHE_DIR)/target
export PROGLOG_CACHE_DIR := $(CACHE_DIR)
CARGO            ?= cargo
BIN_DIR          := $(CARGO_TARGET_DIR)/release

.PHONY: all build release install test test-unit test-operator chart-check lint fmt crds crds-check run certs \
        control-plane control-plane-up control-plane-down local-cluster local-cluster-up local-cluster-down \
        up down e2e-pods bench bench-log bench-server bench-raft e2e test-faults test-faults-long fuzz clean help

all: build

help: ## Show the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## Debug build of every crate
	$(CARGO) build --workspace --all-targets

release: ## Optimised binaries (proglog-node, proglog, proglog-operator)
	$(CARGO) build --release -p proglog-node -p proglog-cli -p proglog-operator --bins

# `make test` runs everything: unit, integration, doc tests, openraft's storage suite, the
# operator tests against a real kube-apiserver + etcd + kube-controller-manager (built once per
# machine by control-plane) and real proglog-node processes, the Helm chart check, and the e2e
# suite against real pods on a fresh local single-node cluster (kubelet, containerd; needs root).
TIMED            := scripts/ci/timed.sh

test: ## Run every test (what CI runs), the e2e suite against real pods on a local cluster
	$(TIMED) script-tests sh -c 'scripts/tests/detached-start.sh && scripts/tests/free-port.sh'
	$(TIMED) control-plane $(MAKE) control-plane
	$(TIMED) workspace-tests $(CARGO) test --workspace --all-targets --no-fail-fast
	$(TIMED) doc-tests $(CARGO) test --workspace --doc
	$(TIMED) test-operator $(MAKE) test-operator
	$(TIMED) chart-check $(MAKE) chart-check
	$(TIMED) examples-check scripts/tests/examples.sh
	$(TIMED) test-faults $(MAKE) test-faults
	$(TIMED) fuzz-smoke env FUZZ_SECONDS=15 scripts/fuzz.sh
	$(TIMED) e2e-pods $(MAKE) e2e-pods
	$(TIMED) install-check scripts/tests/install.sh
	$(TIMED) client-tests $(MAKE) client-tests

test-unit: ## Unit and integration tests only (no control plane)
	$(CARGO) test --workspace --all-targets

test-operator: control-plane ## Operator integration tests against the local control plane
	$(CARGO) build -p proglog-node --bins
	scripts/control-plane/with-control-plane.sh $(CARGO) test -p proglog-operator --test '*' -- --ignored --test-threads=1

chart-check: control-plane ## Helm chart: lint, render, server-side dry run and RBAC checks (builds helm once)
	scripts/chart-check.sh

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

crds: ## Regenerate crds/ from the Rust types
	$(CARGO) run -q -p proglog-operator --bin crdgen -- cluster > crds/proglogcluster.yaml
	$(CARGO) run -q -p proglog-operator --bin crdgen -- user > crds/progloguser.yaml
	cp crds/proglogcluster.yaml crds/progloguser.yaml charts/proglog-operator/crds/

crds-check: ## Fail if the committed CRDs differ from a fresh crdgen
	$(CARGO) run -q -p proglog-operator --bin crdgen -- cluster > $(CACHE_DIR)/crd-fresh.yaml
	$(CARGO) run -q -p proglog-operator --bin crdgen -- user > $(CACHE_DIR)/crd-user-fresh.yaml
	diff -u crds/proglogcluster.yaml $(CACHE_DIR)/crd-fresh.yaml
	diff -u crds/progloguser.yaml $(CACHE_DIR)/crd-user-fresh.yaml
	diff -u crds/proglogcluster.yaml charts/proglog-operator/crds/proglogcluster.yaml
	diff -u crds/progloguser.yaml charts/proglog-operator/crds/progloguser.yaml

run: release ## Start a local 3-node cluster on loopback with dev certificates (Ctrl-C stops it)
	scripts/run-local-cluster.sh

certs: ## Write a dev CA, node and client certificates to .proglog/certs
	$(CARGO) run -q -p proglog-cli --bin proglog -- certs --out .proglog/certs

# `make install`: the release binaries onto PATH (~/.cargo/bin is on it wherever rustup installed
# Rust) and bash completions where bash-completion looks for a user's own.
PREFIX           ?= $(HOME)/.cargo
COMPLETIONS_DIR  ?= $(or $(XDG_DATA_HOME),$(HOME)/.local/share)/bash-completion/completions

install: release ## Put proglog, proglog-node and proglog-operator on PATH ($(PREFIX)/bin) with bash completions
	install -d $(PREFIX)/bin $(COMPLETIONS_DIR)
	install -m 0755 $(BIN_DIR)/proglog $(BIN_DIR)/proglog-node $(BIN_DIR)/proglog-operator $(PREFIX)/bin/
	$(PREFIX)/bin/proglog completions bash > $(COMPLETIONS_DIR)/proglog
	@echo "installed proglog, proglog-node and proglog-operator into $(PREFIX)/bin"

control-plane: ## Build kube-apiserver, kube-controller-manager and etcd from source (cached)
	scripts/control-plane/build.sh

control-plane-up: control-plane ## Start the local control plane (prints KUBECONFIG)
	scripts/control-plane/up.sh

control-plane-down: ## Stop the local control plane
	scripts/control-plane/down.sh

bench: bench-log bench-server bench-raft ## Run every benchmark (figures go to docs/BENCHMARKS.md)

bench-log: ## Storage engine benchmarks + this machine's fsync'd write bandwidth
	scripts/bench/disk-limits.sh
	$(CARGO) bench -p proglog-log --bench log

bench-server: release ## Single-node gRPC benchmarks over mTLS on loopback
	scripts/bench/server.sh

bench-raft: release ## 3-node replicated benchmarks and failover time (shared CPUs, then 0.5 CPU per node)
	scripts/bench/raft.sh
	@if [ -w /sys/fs/cgroup/cpu/cgroup.procs ] || [ -w /sys/fs/cgroup/cgroup.procs ]; then \
	  NODE_CPUS=0.5 FAILOVERS=0 scripts/bench/raft.sh; \
	else echo "skipping the equal-CPU run: it needs a writable cgroup cpu controller (root)"; fi

.PHONY: bench-compare bench-profile
bench-compare: release ## ProgLog vs etcd and NATS JetStream, 3 nodes each, same run (QUICK=1: smoke run)
	scripts/bench/compare.sh

bench-profile: release ## Where a replicated record's CPU goes: perf profiles of a 3-node cluster under load
	scripts/bench/profile.sh

local-cluster: control-plane release ## Everything a local single-node cluster needs (packages, binaries, images; cached)
	scripts/local-cluster/install-deps.sh
	scripts/tools/crictl.sh >/dev/null
	$(CARGO) build -p proglog-e2e --bin local-path-provisioner
	scripts/local-cluster/images.sh

local-cluster-up: local-cluster ## Start the local single-node Kubernetes cluster (prints its KUBECONFIG)
	scripts/local-cluster/up.sh

local-cluster-down: ## Stop the local cluster and remove everything it made
	scripts/local-cluster/down.sh

up: ## Main job: a cluster (kind with a Docker engine, else the local one), the operator by Helm, a 3-node ProgLogCluster
	scripts/up.sh

down: ## Remove what `make up` started
	scripts/down.sh

e2e-pods: local-cluster ## The whole e2e suite against real pods on a fresh local cluster (what CI runs)
	# The host is the cluster's node: clients reach the Services by ClusterIP (e2e/src/relay.rs).
	# Its kubelet refreshes Secret volumes every ~10 s (syncFrequency in up.sh), so a 2-minute
	# node certificate is delivered long before its renewal at two thirds of its lifetime.
	PROGLOG_E2E_SERVICE_ACCESS=cluster-ip PROGLOG_E2E_SHORT_CERT_SECS=120 \
	  scripts/local-cluster/with-local-cluster.sh scripts/e2e-pods.sh

e2e: ## End-to-end tests against $$KUBECONFIG (kind in GitHub Actions)
	$(CARGO) build -p proglog-operator --bin proglog-operator
	$(CARGO) test -p proglog-e2e -- --ignored --test-threads=1

# The nodes are built with the `failpoints` feature: they journal what each fsync made durable,
# so a simulated power cut can drop exactly the rest. The second run is the negative control: a
# node that skips its Raft log's fsync must lose acknowledged records in a power cut of every
# node, and the checker must say so (the run fails if it does not).
test-faults: ## Fault injection: nodes in network namespaces, kills, power cuts, pauses, partitions, lossy links; history check (root)
	scripts/local-cluster/install-deps.sh
	$(CARGO) build -p proglog-node --features failpoints --bins
	$(CARGO) build -p proglog-cli -p proglog-faults --bins
	scripts/faults/run.sh --duration 150s
	scripts/faults/run.sh --nodes 5 --duration 45s \
	  --kinds kill,power-cut,power-cut-all,isolate-leader,replace-member,bit-flip
	scripts/faults/run.sh --duration 20s --kinds power-cut-all \
	  --node-failpoint skip-fsync:/raft/log/ --expect-anomaly lost_append

test-faults-long: ## Longer fault runs (not in CI): 3 nodes for 20 min, 5 nodes for 10 min, every fault kind (root)
	scripts/local-cluster/install-deps.sh
	$(CARGO) build -p proglog-node --features failpoints --bins
	$(CARGO) build -p proglog-cli -p proglog-faults --bins
	scripts/faults/run.sh --duration 1200s
	scripts/faults/run.sh --nodes 5 --duration 600s

fuzz: ## cargo fuzz (nightly): every target in fuzz/ for FUZZ_SECONDS (60) each, executions/s
	scripts/fuzz.sh

clean:
	$(CARGO) clean

# Builds the release binaries first (the workspace build `make release` and e2e-pods share, so no
# second feature set is compiled) so the clients are tested against this checkout's node.
.PHONY: client-tests
client-tests: release ## Go (book's resolver/picker) and Python clients + buf lint against a local 3-node mTLS cluster
	scripts/client-tests.sh
