#!/usr/bin/env bash
# Build kube-apiserver + kube-controller-manager v1.20.2 from Debian's kubernetes source package and
# install etcd, caching the binaries under $TUSKFISH_CACHE/cp/bin (default ~/.cache/tuskfish).
# Idempotent: returns at once when the binaries are already cached.
# Honours TUSKFISH_APISERVER_BIN / TUSKFISH_KCM_BIN / TUSKFISH_ETCD_BIN (pre-built binaries) and skips
# the build when all three are given or found on PATH.
set -euo pipefail
CACHE=${TUSKFISH_CACHE:-$HOME/.cache/tuskfish}
BIN="$CACHE/cp/bin"
SRC="$CACHE/cp/src"
K8S_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
mkdir -p "$BIN" "$SRC"

log() { echo "[build-control-plane] $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

link_prebuilt() { # name env-var
  local name=$1 var=$2 path=${!2:-}
  if [ -z "$path" ]; then path=$(command -v "$name" 2>/dev/null || true); fi
  if [ -n "$path" ] && [ -x "$path" ] && [ ! -e "$BIN/$name" ]; then ln -sf "$path" "$BIN/$name"; log "using $path"; fi
}
link_prebuilt kube-apiserver TUSKFISH_APISERVER_BIN
link_prebuilt kube-controller-manager TUSKFISH_KCM_BIN
link_prebuilt etcd TUSKFISH_ETCD_BIN

if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] && [ -x "$BIN/etcd" ]; then
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if [ ! -f /etc/apt/sources.list.d/tuskfish-bookworm-src.sources ]; then
  log "adding a deb-src entry for bookworm"
  as_root tee /etc/apt/sources.list.d/tuskfish-bookworm-src.sources >/dev/null <<'S'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
S
fi
as_root apt-get update -qq
as_root apt-get install -y -qq golang-go etcd-server rsync golang-github-modern-go-reflect2-dev dpkg-dev openssl >/dev/null
[ -x "$BIN/etcd" ] || ln -sf "$(command -v etcd)" "$BIN/etcd"

if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kube-controller-manager" ]; then
  cd "$SRC"
  ls kubernetes_*.orig.tar.* >/dev/null 2>&1 || apt-get source -qq --download-only "kubernetes=$K8S_DEB_VERSION"
  rm -rf build && mkdir build && cd build
  tar xf ../kubernetes_*.orig.tar.*
  cd "$(ls -d kubernetes-*/ | head -1)"
  # The vendored reflect2 v1.0.1 segfaults under Go >= 1.18; Debian's 1.0.2 is API-compatible.
  r=vendor/github.com/modern-go/reflect2
  rm -rf "$r" && mkdir -p "$r"
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r/"
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r/" 2>/dev/null || true
  rm -f "$r"/*_test.go
  export GOPATH=$PWD/.go
  mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
  log "compiling kube-apiserver + kube-controller-manager (about 10 min on 2 cores, once)"
  env HOME="$SRC/home" GOCACHE="$SRC/gocache" CGO_ENABLED=0 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$SRC/build.log" 2>&1 \
    || { tail -50 "$SRC/build.log"; exit 1; }
  install -m 0755 _output/local/bin/linux/amd64/kube-apiserver _output/local/bin/linux/amd64/kube-controller-manager "$BIN/"
  cd "$SRC" && rm -rf build "$SRC/gocache"
fi
log "control plane binaries ready in $BIN"
