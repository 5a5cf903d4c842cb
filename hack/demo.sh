#!/usr/bin/env bash
# The demo: a local control plane, the node simulator and the operator, the examples applied, and the
# pipeline shown: every environment running its version, a one-field upgrade of prod, and a broken
# hotfix caught by its progress deadline. Leaves everything running; `make demo-down` stops it.
# With TUSKFISH_EXISTING_CLUSTER=1 it uses the cluster $KUBECONFIG points at instead (no simulator).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
S=$(realpath -m "${1:-$ROOT/.state/cluster}")
# shellcheck source=hack/lib.sh
. "$HERE/lib.sh"
ensure_tools --kubectl
cd "$ROOT"

log "building tuskfish"
cargo build --locked --quiet
BIN="$ROOT/target/debug/tuskfish"
mkdir -p "$S"

if [ "${TUSKFISH_EXISTING_CLUSTER:-}" = 1 ]; then
  : "${KUBECONFIG:?TUSKFISH_EXISTING_CLUSTER=1 needs KUBECONFIG}"
  log "using the cluster in $KUBECONFIG"
else
  if [ -f "$S/apiserver.pid" ] && kill -0 "$(cat "$S/apiserver.pid")" 2>/dev/null; then
    log "local control plane already running ($S)"
  else
    log "starting the local control plane (the first run builds it: about 10 minutes, then cached)"
    "$HERE/cluster-up.sh" "$S"
  fi
  export KUBECONFIG="$S/kubeconfig"
fi
k() { kubectl "$@"; }

log "installing the CRDs"
"$BIN" crd | k apply --server-side --force-conflicts -f - >/dev/null

start_bg() { # name, command...
  local name=$1; shift
  if [ -f "$S/$name.pid" ] && kill -0 "$(cat "$S/$name.pid")" 2>/dev/null; then kill "$(cat "$S/$name.pid")"; sleep 0.5; fi
  setsid "$@" >"$S/$name.log" 2>&1 < /dev/null & echo $! > "$S/$name.pid"
}
if [ "${TUSKFISH_EXISTING_CLUSTER:-}" != 1 ]; then
  start_bg node-sim "$BIN" --kubeconfig "$KUBECONFIG" node-sim --nodes 3
fi
start_bg operator "$BIN" --kubeconfig "$KUBECONFIG" run

# Waits until a Release reports the wanted phase (and version, if given).
wait_release() { # name phase [version]
  local want="$2${3:+/$3}" got=""
  for _ in $(seq 1 180); do
    got=$(k get release "$1" -n finance -o jsonpath='{.status.phase}{"/"}{.status.currentVersion}' 2>/dev/null || true)
    case "$got" in "$2/${3:-}"*) return 0 ;; esac
    [ -z "${3:-}" ] && [ "${got%%/*}" = "$2" ] && return 0
    sleep 1
  done
  log "release $1 did not reach $want (now: $got); operator log: $S/operator.log"; return 1
}
show() { echo; echo "\$ $*"; "$@"; }

log "applying examples/"
k apply -f examples/ >/dev/null
for r in payments-prod payments-test payments-dev-1-3 payments-dev-1-4; do wait_release "$r" Healthy; done
show kubectl get environments,appversions,releases -n finance
show kubectl get deployments -A -l app.kubernetes.io/managed-by=tuskfish -L app.kubernetes.io/version

echo; log "one-click upgrade: prod 1.3.9 -> 1.3.10 (one field)"
show kubectl patch release payments-prod -n finance --type merge -p '{"spec":{"version":"1.3.10"}}'
wait_release payments-prod Healthy 1.3.10
show kubectl get release payments-prod -n finance \
  -o jsonpath='{range .status.history[*]}{.version}{"\t"}{.result}{"\t"}{.startedAt}{"\n"}{end}'

echo; log "a broken hotfix (1.3.11, never ready) in dev-1-3 with a 20 s progress deadline"
k apply -f examples/demo/ >/dev/null
show kubectl patch release payments-dev-1-3 -n finance --type merge \
  -p '{"spec":{"version":"1.3.11","progressDeadlineSeconds":20}}'
wait_release payments-dev-1-3 Degraded
show kubectl get releases -n finance
show kubectl get events -n finance --field-selector involvedObject.name=payments-dev-1-3

echo
log "the pipeline is running. KUBECONFIG=$KUBECONFIG; operator log: $S/operator.log"
log "stop it all with: make demo-down"
