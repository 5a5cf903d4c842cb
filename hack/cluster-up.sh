#!/usr/bin/env bash
# Start etcd + kube-apiserver + kube-controller-manager on loopback, on free ports, with their data in
# STATE_DIR. Writes STATE_DIR/kubeconfig and STATE_DIR/*.pid; stop with cluster-down.sh STATE_DIR.
# Usage: cluster-up.sh STATE_DIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${TUSKFISH_CACHE:-$HOME/.cache/tuskfish}
BIN="$CACHE/cp/bin"
S=$(realpath -m "${1:?usage: cluster-up.sh STATE_DIR}")
mkdir -p "$S"
# shellcheck source=hack/lib.sh
. "$HERE/lib.sh"
ensure_tools
"$HERE/build-control-plane.sh"

ETCD_PORT=${ETCD_PORT:-$(pick_port)}
API_PORT=${API_PORT:-$(pick_port)}

[ -f "$S/sa.key" ] || openssl genrsa -out "$S/sa.key" 2048 2>/dev/null
openssl rsa -in "$S/sa.key" -pubout -out "$S/sa.pub" 2>/dev/null
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$TOKEN,admin,admin,system:masters" > "$S/tokens.csv"

setsid "$BIN/etcd" --data-dir "$S/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" \
  >"$S/etcd.log" 2>&1 < /dev/null & echo $! > "$S/etcd.pid"

setsid "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --secure-port "$API_PORT" --insecure-port 0 --cert-dir "$S/certs" \
  --token-auth-file "$S/tokens.csv" --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$S/sa.pub" --service-account-signing-key-file "$S/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 --disable-admission-plugins ServiceAccount \
  >"$S/apiserver.log" 2>&1 < /dev/null & echo $! > "$S/apiserver.pid"

cat > "$S/kubeconfig" <<K
apiVersion: v1
kind: Config
clusters: [{name: tuskfish-local, cluster: {server: "https://127.0.0.1:$API_PORT", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: "$TOKEN"}}]
contexts: [{name: tuskfish-local, context: {cluster: tuskfish-local, user: admin}}]
current-context: tuskfish-local
K

ready=""
for _ in $(seq 1 240); do
  if curl -fsk -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$(cat "$S/apiserver.pid")" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "kube-apiserver did not become ready; last log lines:" >&2; tail -20 "$S/apiserver.log" >&2
  "$HERE/cluster-down.sh" "$S"; exit 1
fi

# kcm's default client budget (20 QPS) would make the bed, not the operator, the bottleneck.
setsid "$BIN/kube-controller-manager" --kubeconfig "$S/kubeconfig" --leader-elect=false \
  --port 0 --secure-port 0 \
  --controllers deployment,replicaset,garbagecollector,namespace,serviceaccount-token,serviceaccount,statefulset,job \
  --service-account-private-key-file "$S/sa.key" --use-service-account-credentials=false \
  --kube-api-qps 300 --kube-api-burst 600 \
  --concurrent-deployment-syncs 20 --concurrent-replicaset-syncs 20 \
  >"$S/kcm.log" 2>&1 < /dev/null & echo $! > "$S/kcm.pid"
echo "control plane up: export KUBECONFIG=$S/kubeconfig" >&2
