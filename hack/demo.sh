#!/usr/bin/env bash
# The demo: a local Kubernetes control plane (kube-scheduler, kwok nodes) and the operator, the
# examples applied, and the pipeline shown: every environment running its version, a one-field
# upgrade of prod approved by the release manager under her own identity, and a broken hotfix
# caught by its progress deadline. Leaves everything running; `make demo-down` stops it.
# With TUSKFISH_EXISTING_CLUSTER=1 it uses the cluster $KUBECONFIG points at instead (that cluster
# needs nodes that run pods, and an approver: TUSKFISH_APPROVER_KUBECONFIG).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
S=$(realpath -m "${1:-$ROOT/.state/cluster}")
# shellcheck source=hack/lib.sh
. "$HERE/lib.sh"
ensure_tools
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
    log "starting the local control plane (the first run builds it from Go modules: about 15 minutes, then cached)"
    "$HERE/cluster-up.sh" "$S"
  fi
  export KUBECONFIG="$S/kubeconfig"
  # The release manager's own credentials (a token user of the local bed).
  TUSKFISH_APPROVER_KUBECONFIG=${TUSKFISH_APPROVER_KUBECONFIG:-$S/users/maria.keller.kubeconfig}
fi
# kubectl of the bed's version (or the one on PATH for an existing cluster).
BED_BIN=$("$HERE/build-control-plane.sh")
[ "${TUSKFISH_EXISTING_CLUSTER:-}" = 1 ] && command -v kubectl >/dev/null || export PATH="$BED_BIN:$PATH"
: "${TUSKFISH_APPROVER_KUBECONFIG:?set TUSKFISH_APPROVER_KUBECONFIG to the kubeconfig of the release manager}"
k() { kubectl "$@"; }

echo "\$ kubectl version"; kubectl version
log "installing the CRDs and the identity policies (Approval, veto)"
"$BIN" crd | k apply --server-side --force-conflicts -f - >/dev/null
k wait --for condition=Established crd --all --timeout 60s >/dev/null

start_bg() { # name, command...
  local name=$1; shift
  if [ -f "$S/$name.pid" ] && kill -0 "$(cat "$S/$name.pid")" 2>/dev/null; then kill "$(cat "$S/$name.pid")"; sleep 0.5; fi
  setsid "$@" >"$S/$name.log" 2>&1 < /dev/null & echo $! > "$S/$name.pid"
}
METRICS_PORT=$(pick_port)
# The web view on 8090 when it is free (a stable address to keep open in a browser tab).
if port_free 8090; then WEB_PORT=8090; else WEB_PORT=$(pick_port); fi
start_bg operator "$BIN" --kubeconfig "$KUBECONFIG" run --metrics-addr "127.0.0.1:$METRICS_PORT" \
  --web-addr "127.0.0.1:$WEB_PORT"
log "open http://127.0.0.1:$WEB_PORT/ns/finance to watch the pipeline live while the demo plays"


rel_status() { k get release "$1" -n finance -o jsonpath='{.status.phase}/{.status.currentVersion}' 2>/dev/null || true; }
# Waits until a Release runs `version` healthily.
wait_healthy() { # name version
  local got=""
  for _ in $(seq 1 120); do
    got=$(rel_status "$1"); [ "$got" = "Healthy/$2" ] && return 0; sleep 1
  done
  log "release $1 did not become Healthy on $2 (now: $got); operator log: $S/operator.log"; return 1
}
# Waits until a jsonpath of a Release has the wanted value.
wait_field() { # name jsonpath value
  local got=""
  for _ in $(seq 1 120); do
    got=$(k get release "$1" -n finance -o jsonpath="$2" 2>/dev/null || true); [ "$got" = "$3" ] && return 0; sleep 1
  done
  log "release $1: $2 is '$got', not '$3'"; return 1
}
show() { echo; echo "\$ $*"; "$@"; }
# The CLI as users run it: `tuskfish …` and the kubectl plugin `kubectl tuskfish …`.
export PATH="$ROOT/target/debug:$PATH"
tf() { show tuskfish -n finance "$@"; }

# The story starts from nothing: remove what an earlier run left (Releases first, so that the
# operator's finalizer cleans up what they applied).
if k get namespace finance >/dev/null 2>&1; then
  log "removing the previous run's finance namespaces"
  # prod-eu's Release is its agent's to clean up; without a running agent nobody would.
  if ! { [ -f "$S/prod-eu/operator.pid" ] && kill -0 "$(cat "$S/prod-eu/operator.pid")" 2>/dev/null; }; then
    k patch releases.tuskfish.dev payments-prod-eu -n finance --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  fi
  k delete releases.tuskfish.dev --all -n finance --wait=true --timeout=90s >/dev/null
  k delete namespace finance finance-dev-1-4 finance-dev-1-3 finance-test finance-prod finance-prod-eu finance-uat \
    --ignore-not-found --wait=true --timeout=120s >/dev/null
fi

log "applying examples/: the admin's PipelinePolicy, 4 environments, 3 builds, 4 releases; the release manager approves 1.3.9 for prod"
for f in examples/*.yaml; do
  case "$f" in
    */40-approvals.yaml)
      # The release manager's RoleBinding (05-…) reaches the authorizer a moment after it is stored.
      for _ in $(seq 1 50); do
        kubectl --kubeconfig "$TUSKFISH_APPROVER_KUBECONFIG" auth can-i create approvals -n finance >/dev/null 2>&1 && break
        sleep 0.2
      done
      kubectl --kubeconfig "$TUSKFISH_APPROVER_KUBECONFIG" apply -f "$f" >/dev/null ;;
    *) k apply -f "$f" >/dev/null ;;
  esac
done
wait_healthy payments-prod 1.3.9
wait_healthy payments-dev-1-3 1.3.10
wait_healthy payments-dev-1-4 1.4.0-rc.1
log "test promotes from dev-1-4 once 1.4.0-rc.1 has been healthy there for 10 s"
wait_healthy payments-test 1.4.0-rc.1
show kubectl get environments,appversions,approvals -n finance
show kubectl tuskfish -n finance status
show kubectl get deployments -A -l app.kubernetes.io/managed-by=tuskfish -L app.kubernetes.io/version

echo; log "a product: platform 1.3.9 (ledger 1.3.3, then payments 1.3.9) runs in uat as one unit"
k apply -f examples/products/platform.yaml >/dev/null
wait_healthy platform-uat.ledger 1.3.3
wait_healthy platform-uat.payments 1.3.9
tf product status

echo; log "forward-port check: the 1.3.10 hotfix (FIN-142) is not in the 1.4 line yet"
tf diff dev-1-3 dev-1-4

echo; log "a broken hotfix: 1.3.11 never becomes ready in dev-1-3 (20 s deadline) and is rolled back"
k apply -f examples/demo/40-broken-hotfix.yaml >/dev/null
wait_field payments-dev-1-3 '{.status.failedVersions[0]}' 1.3.11
wait_healthy payments-dev-1-3 1.3.10
tf history payments --env dev-1-3

echo; log "1.4.0-rc.2 carries the fix: dev-1-4 takes it, the warning clears, test follows after its soak"
k apply -f examples/demo/50-forward-port.yaml >/dev/null
wait_healthy payments-dev-1-4 1.4.0-rc.2
wait_healthy payments-test 1.4.0-rc.2
tf diff dev-1-3 dev-1-4

echo; log "one-click deploy of the hotfix to prod; it waits for approval"
tf deploy payments 1.3.10 --env prod
wait_field payments-prod '{.status.heldVersion}' 1.3.10
tf status
log "the release manager approves, and follows the rollout"
log "(an Approval in her name from anyone else is refused by the API server:)"
show kubectl apply -f examples/demo/60-approve-prod-1.3.10.yaml || true
show tuskfish --kubeconfig "$TUSKFISH_APPROVER_KUBECONFIG" -n finance approve payments 1.3.10 --env prod \
  --reason "CAB-2057 (FX rounding fix)" --wait
tf status
tf history payments --env prod
show kubectl get events -n finance --field-selector involvedObject.kind=Release --sort-by=.metadata.creationTimestamp

echo; log "prod-eu: a second production site in its own cluster, which takes no inbound connection"
log "(a second control plane here; an agent runs beside it, dials out to this hub and deploys what prod runs)"
EU="$S/prod-eu"
if [ -f "$EU/apiserver.pid" ] && kill -0 "$(cat "$EU/apiserver.pid")" 2>/dev/null; then :; else
  KWOK_NODES=1 "$HERE/cluster-up.sh" "$EU" 2>/dev/null
fi
# The agent's hub rights: a ServiceAccount and a Role in namespace finance only, and a token for it.
k apply -f examples/agent/hub-rbac.yaml >/dev/null
HUB_SERVER=$(k config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
cat > "$EU/hub.kubeconfig" <<K
apiVersion: v1
kind: Config
clusters: [{name: hub, cluster: {server: "$HUB_SERVER", insecure-skip-tls-verify: true}}]
users: [{name: tuskfish-agent-prod-eu, user: {token: "$(k -n finance create token tuskfish-agent-prod-eu --duration 24h)"}}]
contexts: [{name: hub, context: {cluster: hub, user: tuskfish-agent-prod-eu}}]
current-context: hub
K
S="$EU" start_bg operator "$BIN" --kubeconfig "$EU/kubeconfig" agent --name prod-eu \
  --hub-kubeconfig "$EU/hub.kubeconfig" --hub-namespace finance --metrics-addr off
k apply -f examples/clusters/prod-eu.yaml >/dev/null
wait_healthy payments-prod-eu 1.3.10
show kubectl get environments -n finance
tf status
log "in prod-eu's own cluster (the hub holds no credentials for it):"
show kubectl --kubeconfig "$EU/kubeconfig" get deployments -n finance-prod-eu -L app.kubernetes.io/version

echo
log "the pipeline is running. KUBECONFIG=$KUBECONFIG; operator log: $S/operator.log; agent log: $EU/operator.log"
log "metrics: curl -s 127.0.0.1:$METRICS_PORT/metrics | grep ^tuskfish_; live view: tuskfish -n finance status --watch"
log "web view (read-only, live): http://127.0.0.1:$WEB_PORT/ns/finance"
log "stop it all with: make demo-down"
