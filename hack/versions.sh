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

# Flux, side by side in the benchmark (hack/build-control-plane.sh --flux, hack/flux-up.sh): the
# newest releases whose go.mod accepts Go 1.26 (1.10.x requires Go >= 1.27).
FLUX_SOURCE_CONTROLLER_VERSION=1.9.6
FLUX_KUSTOMIZE_CONTROLLER_VERSION=1.9.6
# Dependencies at versions the module proxy does not serve (403 "not available"), as MODULE=VERSION:
# the wrappers replace them with this served version. source-controller 1.9.6 requires
# github.com/fluxcd/pkg/artifact v0.18.3; of the 0.18 line only 0.18.0 is served.
FLUX_SUBSTITUTES="github.com/fluxcd/pkg/artifact=0.18.0"

# Helm renders chart AppVersions (the operator's image ships it; the tests and the demo build it);
# the CNCF distribution registry serves the tests' charts over OCI.
HELM_VERSION=4.3.2
# Toxiproxy injects network faults (latency, stalls, resets) in the fault suite (tests/chaos.rs).
TOXIPROXY_VERSION=2.5.0
DISTRIBUTION_VERSION=3.1.2
