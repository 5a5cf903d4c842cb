#!/usr/bin/env bash
# Starts a Kubernetes control plane on loopback, on free ports, with its data in STATE_DIR:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok simulating the kubelets of
# KWOK_NODES Nodes (pods are scheduled onto them for real and behave as hack/kwok/stages.yaml says).
# Writes STATE_DIR/kubeconfig (admin), STATE_DIR/users/NAME.kubeconfig (token users, see below),
# STATE_DIR/bin (the binaries of this version: kubectl …) and STATE_DIR/*.pid; stop with
# cluster-down.sh STATE_DIR.
# Usage: cluster-up.sh STATE_DIR      (TUSKFISH_K8S_VERSION=1.37|1.33|1.X.Y, KWOK_NODES=3)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
S=$(realpath -m "${1:?usage: cluster-up.sh STATE_DIR}")
mkdir -p "$S/users"
# shellcheck source=hack/lib.sh
. "$HERE/lib.sh"
ensure_tools
BIN=$("$HERE/build-control-plane.sh")
ln -sfn "$BIN" "$S/bin"

ETCD_PORT=${ETCD_PORT:-$(pick_port)}
API_PORT=${API_PORT:-$(pick_port)}
NODES=${KWOK_NODES:-3}

[ -f "$S/sa.key" ] || openssl genrsa -out "$S/sa.key" 2048 2>/dev/null
openssl rsa -in "$S/sa.key" -pubout -out "$S/sa.pub" 2>/dev/null

# Token users. admin is a cluster admin; the others have no rights until a (Cluster)RoleBinding
# grants them some: the demo and the tests bind them to show that an Approval names its real author.
token() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
ADMIN_TOKEN=$(token)
: > "$S/tokens.csv"
echo "$ADMIN_TOKEN,admin,admin,system:masters" >> "$S/tokens.csv"
declare -A USER_TOKENS
for u in maria.keller alex.dev; do
  USER_TOKENS[$u]=$(token)
  echo "${USER_TOKENS[$u]},$u,$u,tuskfish:users" >> "$S/tokens.csv"
done

setsid "$BIN/etcd" --data-dir "$S/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" \
  --quota-backend-bytes 8589934592 \
  >"$S/etcd.log" 2>&1 < /dev/null & echo $! > "$S/etcd.pid"

# No endpoint reconciler: it refuses a loopback address for the `kubernetes` Service, and nothing
# here reaches the API server through that Service.
# ServiceAccount admission is off: kwok's pods need no token volume, and with it on a pod created
# before its namespace's default ServiceAccount is refused (the ReplicaSet retries, slowly).
# TaintNodesByCondition is off: it taints every new Node not-ready until the node-lifecycle
# controller clears it, and that controller would also want kubelet heartbeats kwok need not send.
setsid "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --secure-port "$API_PORT" --cert-dir "$S/certs" --endpoint-reconciler-type none \
  --token-auth-file "$S/tokens.csv" --authorization-mode Node,RBAC \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$S/sa.pub" --service-account-signing-key-file "$S/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 --disable-admission-plugins ServiceAccount,TaintNodesByCondition \
  --max-requests-inflight 800 --max-mutating-requests-inflight 400 \
  >"$S/apiserver.log" 2>&1 < /dev/null & echo $! > "$S/apiserver.pid"

kubeconfig_for() { # user token
  cat <<K
apiVersion: v1
kind: Config
clusters: [{name: tuskfish-local, cluster: {server: "https://127.0.0.1:$API_PORT", insecure-skip-tls-verify: true}}]
users: [{name: $1, user: {token: "$2"}}]
contexts: [{name: tuskfish-local, context: {cluster: tuskfish-local, user: $1}}]
current-context: tuskfish-local
K
}
kubeconfig_for admin "$ADMIN_TOKEN" > "$S/kubeconfig"
for u in "${!USER_TOKENS[@]}"; do kubeconfig_for "$u" "${USER_TOKENS[$u]}" > "$S/users/$u.kubeconfig"; done

ready=""
for _ in $(seq 1 240); do
  if curl -fsk -H "Authorization: Bearer $ADMIN_TOKEN" "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$(cat "$S/apiserver.pid")" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "kube-apiserver did not become ready; last log lines:" >&2; tail -20 "$S/apiserver.log" >&2
  "$HERE/cluster-down.sh" "$S"; exit 1
fi

# The default client budgets (20 QPS for kcm, 50 for the scheduler) would make the bed, not the
# operator, the bottleneck of a 1,000-Release benchmark.
setsid "$BIN/kube-controller-manager" --kubeconfig "$S/kubeconfig" --leader-elect=false --secure-port 0 \
  --controllers deployment,replicaset,garbagecollector,namespace,serviceaccount-token,serviceaccount,statefulset,job,daemonset,persistentvolume-binder \
  --service-account-private-key-file "$S/sa.key" --use-service-account-credentials=false \
  --kube-api-qps 300 --kube-api-burst 600 \
  --concurrent-deployment-syncs 20 --concurrent-replicaset-syncs 20 \
  >"$S/kcm.log" 2>&1 < /dev/null & echo $! > "$S/kcm.pid"

cat > "$S/scheduler.yaml" <<Y
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: "$S/kubeconfig", qps: 300, burst: 600}
leaderElection: {leaderElect: false}
Y
setsid "$BIN/kube-scheduler" --config "$S/scheduler.yaml" --secure-port 0 \
  >"$S/scheduler.log" 2>&1 < /dev/null & echo $! > "$S/scheduler.pid"

"$HERE/kwok-up.sh" "$S" "$S/kubeconfig" "$NODES"
echo "Kubernetes $("$BIN/kubectl" --kubeconfig "$S/kubeconfig" version -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -1) up: export KUBECONFIG=$S/kubeconfig" >&2
