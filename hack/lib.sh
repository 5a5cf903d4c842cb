# Shared helpers for the hack/ scripts (sourced, not run).

log() { echo "[tuskfish] $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=""
apt_install() {
  [ -n "$APT_UPDATED" ] || { as_root apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# A free loopback port (and the one after it), so that parallel runs never collide.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
  # Below the kernel's ephemeral range: a port in it can be handed to any outgoing connection (or
  # a test's "free" port) between this check and the bind (etcd's peer port was, once, under load).
  local p low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 12000 ] || low=32768
  for _ in $(seq 1 200); do
    p=$((10000 + RANDOM % (low - 10002)))
    if port_free "$p" && port_free $((p + 1)); then echo "$p"; return; fi
  done
  echo "no free port found" >&2; exit 1
}

# Makes sure the tools the scripts call are there; installs the missing ones from Debian.
ensure_tools() {
  if ! command -v cargo >/dev/null; then
    log "cargo not found: install a stable Rust toolchain (https://rustup.rs), then re-run"
    exit 1
  fi
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  command -v openssl >/dev/null || missing+=(openssl)
  for want in "$@"; do
    case "$want" in
      # tests/web.rs drives Debian's Chromium through chromedriver.
      --browser) command -v chromium >/dev/null && command -v chromedriver >/dev/null || missing+=(chromium chromium-driver) ;;
    esac
  done
  if [ ${#missing[@]} -gt 0 ]; then log "installing ${missing[*]}"; apt_install "${missing[@]}"; fi
}

# Helm without a helm binary: the Helm v4 SDK from PyPI in a venv under ~/.cache/tuskfish (for
# linting, rendering and installing the chart). Prints the venv's python.
HELM_SDK_VERSION=0.2.2
ensure_helm_python() {
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/tuskfish/helm-venv"
  if ! "$venv/bin/python" -c "import helm_python" 2>/dev/null; then
    python3 -m venv --help >/dev/null 2>&1 && python3 -c "import ensurepip" 2>/dev/null || apt_install python3-venv
    log "installing helm-python-sdk $HELM_SDK_VERSION into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "helm-python-sdk==$HELM_SDK_VERSION" >&2
  fi
  echo "$venv/bin/python"
}
