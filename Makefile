# tuskfish — see README.md. Every target installs what it needs (apt/cargo) and caches the slow parts
# under ~/.cache/tuskfish.

STATE ?= $(CURDIR)/.state/cluster
CARGO ?= cargo

.PHONY: bench chaos all build test demo demo-down cluster cluster-down generate check-generated fmt lint ci chart

all: build

build:
	$(CARGO) build --locked

## Unit + integration tests against a fresh local control plane (started and stopped for the run).
test:
	hack/test.sh

## The fault suite's long run: the operator killed 100 times mid-rollout (make test kills it 20 times).
chaos:
	TUSKFISH_CHAOS_KILLS=100 hack/test.sh --test chaos

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

GENERATED := crds/tuskfish.dev.yaml charts/tuskfish/crds/tuskfish.dev.yaml

## Writes crds/ (and the chart's copy) from the Rust types.
generate:
	@for f in $(GENERATED); do $(CARGO) run --locked --quiet -- crd > $$f; done

## Fails when crds/ does not match the Rust types.
check-generated:
	@$(CARGO) run --locked --quiet -- crd > "$${TMPDIR:-/tmp}/tuskfish-crds.yaml"
	@for f in $(GENERATED); do diff -u $$f "$${TMPDIR:-/tmp}/tuskfish-crds.yaml" >/dev/null \
		|| { echo "$$f is out of date: run 'make generate' and commit the result" >&2; exit 1; }; done

## Lints the Helm chart strictly and prints it rendered (Helm v4 SDK from PyPI, no helm binary).
chart:
	@PY=$$(bash -c '. hack/lib.sh; ensure_helm_python') && $$PY hack/helm.py lint charts/tuskfish \
		&& $$PY hack/helm.py template charts/tuskfish tuskfish tuskfish-system

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## What CI runs.
ci: check-generated lint test
