#!/usr/bin/env bash
# The test suite: unit tests and integration tests against a real control plane. Starts a fresh local
# one (Kubernetes $TUSKFISH_K8S_VERSION, default 1.37; stopped afterwards) unless
# TUSKFISH_TEST_KUBECONFIG names a cluster to use instead (a throwaway one with kwok nodes:
# hack/kwok-up.sh adds them to any cluster).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=hack/lib.sh
. "$HERE/lib.sh"
ensure_tools --browser
TUSKFISH_HELM_PYTHON=$(ensure_helm_python)
export TUSKFISH_HELM_PYTHON
cd "$ROOT"
# Helm v4 renders chart AppVersions; the distribution registry serves the tests' charts (OCI).
TUSKFISH_HELM="$("$HERE/build-control-plane.sh" --helm)/helm"
TUSKFISH_REGISTRY="$("$HERE/build-control-plane.sh" --registry)/registry"
# Toxiproxy: the fault suite's network faults between the operator and the API servers.
TUSKFISH_TOXIPROXY="$("$HERE/build-control-plane.sh" --toxiproxy)/toxiproxy"
export TUSKFISH_HELM TUSKFISH_REGISTRY TUSKFISH_TOXIPROXY
# kubectl of the bed's version on PATH: tests run it as users do.
BIN=$("$HERE/build-control-plane.sh")
export PATH="$BIN:$PATH"
if [ -z "${TUSKFISH_TEST_KUBECONFIG:-}" ]; then
  STATE=$(mktemp -d "${TMPDIR:-/tmp}/tuskfish-test.XXXXXX")
  trap '"$HERE/cluster-down.sh" "$STATE" --purge' EXIT
  "$HERE/cluster-up.sh" "$STATE"
  export TUSKFISH_TEST_KUBECONFIG="$STATE/kubeconfig"
fi
log "testing against Kubernetes $(kubectl --kubeconfig "$TUSKFISH_TEST_KUBECONFIG" version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -1)"
# Arguments choose what to run (`--test chaos`); without, everything.
[ $# -gt 0 ] || set -- --all-targets
cargo test --locked "$@"
