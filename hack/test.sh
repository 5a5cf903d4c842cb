#!/usr/bin/env bash
# The test suite: unit tests and integration tests against a real control plane. Starts a fresh local
# one (and stops it afterwards) unless TUSKFISH_TEST_KUBECONFIG names a cluster to use instead.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=hack/lib.sh
. "$HERE/lib.sh"
ensure_tools --browser
TUSKFISH_HELM_PYTHON=$(ensure_helm_python)
export TUSKFISH_HELM_PYTHON
cd "$ROOT"
if [ -z "${TUSKFISH_TEST_KUBECONFIG:-}" ]; then
  STATE=$(mktemp -d "${TMPDIR:-/tmp}/tuskfish-test.XXXXXX")
  trap '"$HERE/cluster-down.sh" "$STATE" --purge' EXIT
  "$HERE/cluster-up.sh" "$STATE"
  export TUSKFISH_TEST_KUBECONFIG="$STATE/kubeconfig"
fi
# Arguments choose what to run (`--test chaos`); without, everything.
[ $# -gt 0 ] || set -- --all-targets
cargo test --locked "$@"
