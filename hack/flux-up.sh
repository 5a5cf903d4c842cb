#!/usr/bin/env bash
# Starts Flux beside the bed, for the benchmark (benches/pipeline/flux.rs): source-controller and
# kustomize-controller (built by build-control-plane.sh --flux) against the cluster of KUBECONFIG,
# everything on free loopback ports, and hack/githttp, a read-only Git server on loopback for the
# bare repositories STATE_DIR/git/NAME.git (the bench writes them; source-controller clones them).
# Installs the Flux CRDs first (the modules' own config/crd/bases). Writes STATE_DIR/{githttp,
# source-controller,kustomize-controller}.pid and .log, STATE_DIR/flux-git-url (the Git server's base
# URL); on failure STATE_DIR/flux-unavailable says why, in one line. Stop with cluster-down.sh STATE_DIR.
# Usage: flux-up.sh STATE_DIR KUBECONFIG      (FLUX_CONCURRENT=16: kustomize-controller --concurrent)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
S=$(realpath -m "${1:?usage: flux-up.sh STATE_DIR KUBECONFIG}")
KC=$(realpath "${2:?usage: flux-up.sh STATE_DIR KUBECONFIG}")
# The same number of reconciles in flight as the operator's default --concurrency (16); Flux's own
# default is 4.
CONCURRENT=${FLUX_CONCURRENT:-16}
# shellcheck source=hack/versions.sh
. "$HERE/versions.sh"
# shellcheck source=hack/lib.sh
. "$HERE/lib.sh"
mkdir -p "$S/git" "$S/flux-storage"
rm -f "$S/flux-unavailable"

fail() {
  log "flux-up: $1"
  echo "$1" > "$S/flux-unavailable"
  for p in kustomize-controller source-controller githttp; do
    [ -f "$S/$p.pid" ] || continue
    kill "$(cat "$S/$p.pid")" 2>/dev/null || true
    rm -f "$S/$p.pid"
  done
  exit 1
}

command -v git >/dev/null || { log "installing git (githttp serves through git http-backend)"; apt_install git; }
log "building Flux if needed (log: $S/flux-build.log)"
if ! FLUX_BIN=$("$HERE/build-control-plane.sh" --flux 2>"$S/flux-build.log"); then
  tail -20 "$S/flux-build.log" >&2
  fail "building Flux failed: $(grep -v '^go: downloading' "$S/flux-build.log" | tail -1)"
fi
BIN=$("$HERE/build-control-plane.sh" 2>>"$S/flux-build.log") || fail "building kubectl failed (see $S/flux-build.log)"
k() { "$BIN/kubectl" --kubeconfig "$KC" "$@"; }

# The CRDs of both controllers (source-controller watches every source kind it serves).
CRDS=$(dirname "$FLUX_BIN")/crds
k apply --server-side --force-conflicts --field-manager tuskfish-bed -f "$CRDS" >/dev/null \
  || fail "installing the Flux CRDs from $CRDS failed"
k wait --for condition=Established --timeout 60s -f "$CRDS" >/dev/null \
  || fail "the Flux CRDs did not become Established"

GIT_PORT=$(pick_port)
setsid "$FLUX_BIN/githttp" -root "$S/git" -addr "127.0.0.1:$GIT_PORT" \
  >"$S/githttp.log" 2>&1 < /dev/null & echo $! > "$S/githttp.pid"

# Artifacts are served on (and advertised at) a loopback port: kustomize-controller fetches them there.
# Leader election is off (as for the operator in the bench); the API server has priority and
# fairness on, so both controllers run without client-side throttling. The kubeconfig goes in
# KUBECONFIG: their (pflag) command lines have no --kubeconfig.
STORAGE_PORT=$(pick_port) SC_METRICS=$(pick_port) SC_HEALTH=$(pick_port)
KUBECONFIG="$KC" setsid "$FLUX_BIN/source-controller" \
  --enable-leader-election=false --watch-all-namespaces=true \
  --storage-path "$S/flux-storage" --storage-addr "127.0.0.1:$STORAGE_PORT" \
  --storage-adv-addr "127.0.0.1:$STORAGE_PORT" \
  --metrics-addr "127.0.0.1:$SC_METRICS" --health-addr "127.0.0.1:$SC_HEALTH" \
  >"$S/source-controller.log" 2>&1 < /dev/null & echo $! > "$S/source-controller.pid"

KC_METRICS=$(pick_port) KC_HEALTH=$(pick_port)
KUBECONFIG="$KC" setsid "$FLUX_BIN/kustomize-controller" \
  --enable-leader-election=false --watch-all-namespaces=true --concurrent "$CONCURRENT" \
  --metrics-addr "127.0.0.1:$KC_METRICS" --health-addr "127.0.0.1:$KC_HEALTH" \
  >"$S/kustomize-controller.log" 2>&1 < /dev/null & echo $! > "$S/kustomize-controller.pid"

# Up once the Git server answers (any HTTP status) and both controllers report ready (200).
# wait_up NAME URL STATUS_REGEX — polls URL; fails, with NAME's last log lines, if NAME exits first.
wait_up() {
  local code
  for _ in $(seq 1 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$2" || true)
    [[ $code =~ ^$3$ ]] && return 0
    kill -0 "$(cat "$S/$1.pid")" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$S/$1.log" >&2
  fail "$1 did not come up: $(tail -1 "$S/$1.log")"
}
wait_up githttp "http://127.0.0.1:$GIT_PORT/" '[1-5][0-9][0-9]'
wait_up source-controller "http://127.0.0.1:$SC_HEALTH/readyz" 200
wait_up kustomize-controller "http://127.0.0.1:$KC_HEALTH/readyz" 200
echo "http://127.0.0.1:$GIT_PORT" > "$S/flux-git-url"
log "Flux up (source-controller $FLUX_SOURCE_CONTROLLER_VERSION, kustomize-controller $FLUX_KUSTOMIZE_CONTROLLER_VERSION, Git at http://127.0.0.1:$GIT_PORT)"
