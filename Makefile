# tuskfish — see README.md. Every target installs what it needs (apt/cargo) and caches the slow parts
# under ~/.cache/tuskfish.

STATE ?= $(CURDIR)/.state/cluster
CARGO ?= cargo

.PHONY: all build test demo demo-down cluster cluster-down generate check-generated fmt lint ci

all: build

build:
	$(CARGO) build --locked

## Unit + integration tests against a fresh local control plane (started and stopped for the run).
test:
	hack/test.sh

## The local control plane + node simulator + operator, the examples applied, the pipeline shown.
demo:
	hack/demo.sh "$(STATE)"

demo-down cluster-down:
	hack/cluster-down.sh "$(STATE)"

## Only the local control plane (kubeconfig in .state/cluster/kubeconfig).
cluster:
	hack/cluster-up.sh "$(STATE)"

## Writes crds/ from the Rust types.
generate:
	$(CARGO) run --locked --quiet -- crd > crds/tuskfish.dev.yaml

## Fails when crds/ does not match the Rust types.
check-generated:
	@$(CARGO) run --locked --quiet -- crd > "$${TMPDIR:-/tmp}/tuskfish-crds.yaml"
	@diff -u crds/tuskfish.dev.yaml "$${TMPDIR:-/tmp}/tuskfish-crds.yaml" \
		|| { echo "crds/ is out of date: run 'make generate' and commit the result" >&2; exit 1; }

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## What CI runs.
ci: check-generated lint test
