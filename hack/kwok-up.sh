#!/usr/bin/env bash
# Registers NODES fake Nodes in the cluster of KUBECONFIG and starts kwok to act as their kubelets,
# with the pod behaviours of hack/kwok/stages.yaml. cluster-up.sh calls it; it also works against a
# cluster of your own (a throwaway one: the Nodes are fake). Stop with cluster-down.sh STATE_DIR.
# Usage: kwok-up.sh STATE_DIR KUBECONFIG [NODES]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
S=$(realpath -m "${1:?usage: kwok-up.sh STATE_DIR KUBECONFIG [NODES]}")
KC=${2:?usage: kwok-up.sh STATE_DIR KUBECONFIG [NODES]}
NODES=${3:-3}
mkdir -p "$S"
BIN=$("$HERE/build-control-plane.sh")
k() { "$BIN/kubectl" --kubeconfig "$KC" "$@"; }

# Each Node gets a /16 of its own for pod IPs (status only: nothing is ever routed to them).
for i in $(seq 0 $((NODES - 1))); do
  cat <<N
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
  annotations: {kwok.x-k8s.io/node: fake}
spec: {podCIDR: "10.$((200 + i)).0.0/16", podCIDRs: ["10.$((200 + i)).0.0/16"]}
N
done | k apply --server-side --field-manager tuskfish-bed -f - >/dev/null

setsid "$BIN/kwok" --kubeconfig "$KC" --config "$HERE/kwok/stages.yaml" \
  --manage-all-nodes=false --manage-nodes-with-label-selector type=kwok \
  --node-ip 10.199.0.1 --cidr 10.199.0.0/16 \
  >"$S/kwok.log" 2>&1 < /dev/null & echo $! > "$S/kwok.pid"

# The bed is usable once every Node is Ready (kwok has taken them over).
for _ in $(seq 1 120); do
  ready=$(k get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True || true)
  [ "$ready" -ge "$NODES" ] && exit 0
  kill -0 "$(cat "$S/kwok.pid")" 2>/dev/null || break
  sleep 0.5
done
echo "kwok did not make the Nodes Ready; last log lines:" >&2; tail -20 "$S/kwok.log" >&2
exit 1
