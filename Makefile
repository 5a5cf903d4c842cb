# tuskfish — see README.md. Every target installs what it needs (apt/cargo) and caches the slow parts
# under ~/.cache/tuskfish.

STATE ?= $(CURDIR)/.state/cluster
CARGO ?= cargo

.PHONY: bench chaos test-1.33 all build test demo demo-down cluster cluster-down generate check-generated fmt lint ci chart docs

all: build

build:
	$(CARGO) build --locked

## Unit + integration tests against a fresh local control plane (started and stopped for the run).
test:
	hack/test.sh

## The fault suite's long run on a fresh bed: the operator killed 100 times mid-rollout, and 20
## rounds of network faults (latency, stall, reset) of each kind (make test: 20 kills, 3 rounds).
chaos:
	TUSKFISH_CHAOS_KILLS=100 TUSKFISH_CHAOS_PARTITIONS=20 hack/test.sh --test chaos

## The integration tests on the oldest supported Kubernetes (1.33) — CI runs them too.
test-1.33:
	TUSKFISH_K8S_VERSION=1.33 hack/test.sh --test '*'

## The book (docs/, mdBook) into target/book, offline; fails on a warning or a broken link.
docs:
	hack/docs.sh

## Figures against raw server-side apply on a fresh local control plane: docs/benchmarks.md (+ .svg).
bench:
	hack/bench.sh

## The local control plane + node simulator + operator, the examples applied, the pipeline shown.
demo:
	hack/demo.sh "$(STATE)"

demo-down cluster-down:
	hack/cluster-down.sh "$(STATE)"

## Only the local control plane (kubeconfig in .state/cluster/kubeconfig).
cluster:
	hack/cluster-up.sh "$(STATE)"

## Writes crds/ (and the chart's copies) from the Rust types.
generate:
	@hack/generate.sh

## Fails when crds/ or the chart's copies do not match the Rust types.
check-generated:
	@hack/generate.sh --check

## Lints the Helm chart strictly and prints it rendered (Helm v4 SDK from PyPI, no helm binary).
chart:
	@PY=$$(bash -c '. hack/lib.sh; ensure_helm_python') && $$PY hack/helm.py lint charts/tuskfish \
		&& $$PY hack/helm.py template charts/tuskfish tuskfish tuskfish-system

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	python3 hack/imports.py

## What CI runs.
ci: check-generated lint docs test
