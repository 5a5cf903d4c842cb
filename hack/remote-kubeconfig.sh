#!/usr/bin/env bash
# Prints a kubeconfig for another cluster that the operator may use (an Environment's
# `cluster.kubeConfigSecretRef`): a ServiceAccount token with the least rights the operator needs
# there (examples/clusters/remote-identity.yaml), the cluster's server and CA inline. Self-contained
# on purpose: the operator refuses a kubeconfig that runs a command (EKS/GKE `exec`) or reads a file.
#
#   hack/remote-kubeconfig.sh ADMIN_KUBECONFIG [DURATION] > remote.kubeconfig
#
# ADMIN_KUBECONFIG: a kubeconfig that may create the identity in that cluster (yours, once).
# DURATION: how long the token is good for (default 8760h; rotate it by running this again and
# updating the Secret: the operator follows the Secret).
set -euo pipefail
ADMIN=${1:?usage: hack/remote-kubeconfig.sh ADMIN_KUBECONFIG [DURATION]}
DURATION=${2:-8760h}
HERE=$(cd "$(dirname "$0")" && pwd)
k() { kubectl --kubeconfig "$ADMIN" "$@"; }
k apply -f "$HERE/../examples/clusters/remote-identity.yaml" >&2
TOKEN=$(k -n tuskfish-remote create token tuskfish --duration "$DURATION")
SERVER=$(k config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.server}')
CA=$(k config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
INSECURE=$(k config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.insecure-skip-tls-verify}')
if [ -n "$CA" ]; then
  TRUST="certificate-authority-data: $CA"
elif [ "$INSECURE" = "true" ]; then
  # Only for throwaway clusters whose kubeconfig trusts any certificate (the test bed's).
  TRUST="insecure-skip-tls-verify: true"
else
  echo "the kubeconfig's cluster has no certificate-authority-data: put the CA inline (kubectl config view --raw --flatten)" >&2
  exit 1
fi
cat <<K
apiVersion: v1
kind: Config
clusters: [{name: remote, cluster: {server: "$SERVER", $TRUST}}]
users: [{name: tuskfish, user: {token: "$TOKEN"}}]
contexts: [{name: remote, context: {cluster: remote, user: tuskfish}}]
current-context: remote
K
