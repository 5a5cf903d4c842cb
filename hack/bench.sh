#!/usr/bin/env bash
# The benchmark: a fresh local control plane, the release binary, and benches/pipeline.rs, which
# writes docs/benchmarks.md and docs/benchmarks.svg. BENCH_APPS (apps per environment, 10
# environments; default "10,100" = 100 and 1,000 Releases) and BENCH_STEADY_SECS tune it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=hack/lib.sh
. "$HERE/lib.sh"
ensure_tools
cd "$ROOT"
cargo build --locked --release --bin tuskfish
if [ -z "${TUSKFISH_BENCH_KUBECONFIG:-}" ]; then
  STATE=$(mktemp -d "${TMPDIR:-/tmp}/tuskfish-bench.XXXXXX")
  trap '"$HERE/cluster-down.sh" "$STATE" --purge' EXIT
  "$HERE/cluster-up.sh" "$STATE"
  export TUSKFISH_BENCH_KUBECONFIG="$STATE/kubeconfig"
  # The bench reads the control plane's pids from here, to report the CPU each process used.
  export TUSKFISH_BENCH_STATE="$STATE"
fi
cargo bench --locked --bench pipeline
