# Shared helpers for the hack/ scripts (sourced, not run).

log() { echo "[tuskfish] $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=""
apt_install() {
  [ -n "$APT_UPDATED" ] || { as_root apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
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
  if [ "${1:-}" = "--kubectl" ] && ! command -v kubectl >/dev/null; then missing+=(kubernetes-client); fi
  if [ ${#missing[@]} -gt 0 ]; then log "installing ${missing[*]}"; apt_install "${missing[@]}"; fi
}
