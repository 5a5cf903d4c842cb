# The versions of the test bed (sourced). One place to move them.
# Kubernetes: the newest served 1.37.x is the default; 1.33.x is the oldest version k8s-openapi 0.29
# supports, and CI runs the integration tests on it too.
K8S_DEFAULT=1.37.2
K8S_OLDEST=1.33.13
ETCD_VERSION=3.6.16
KWOK_VERSION=0.8.0

# k8s_version [1.37|1.33|1.X.Y|""] — the exact version a short name means.
k8s_version() {
  case "${1:-}" in
    "" | 1.37) echo "$K8S_DEFAULT" ;;
    1.33) echo "$K8S_OLDEST" ;;
    1.*.*) echo "$1" ;;
    *) echo "TUSKFISH_K8S_VERSION=$1: expected 1.37, 1.33 or an exact version such as 1.36.3" >&2; return 1 ;;
  esac
}
