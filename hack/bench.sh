#!/usr/bin/env bash
# The benchmark: a fresh local control plane, the release binary, and benches/pipeline.rs, which
# writes docs/benchmarks.md and docs/benchmarks.svg. BENCH_APPS (apps per environment, 10
# environments; default "10,100" = 100 and 1,000 Releases) and BENCH_STEADY_SECS tune it.
# Flux runs beside it on the same bed (hack/flux-up.sh; TUSKFISH_BENCH_FLUX=0 leaves it out): when it
# cannot be built or started, the bench runs without it and docs/benchmarks.md says why.
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
  if [ "${TUSKFISH_BENCH_FLUX:-1}" != 0 ]; then
    if "$HERE/flux-up.sh" "$STATE" "$STATE/kubeconfig"; then
      export TUSKFISH_BENCH_FLUX=1
    else
      # The reason is in $STATE/flux-unavailable, for the bench to print.
      export TUSKFISH_BENCH_FLUX=0
      log "Flux is not measured: $(cat "$STATE/flux-unavailable" 2>/dev/null || echo "flux-up.sh failed")"
    fi
  fi
fi
cargo bench --locked --bench pipeline
