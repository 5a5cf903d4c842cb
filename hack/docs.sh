#!/usr/bin/env bash
# Builds the book (docs/, mdBook) into target/book, offline, and fails on any warning of mdBook's or
# a broken link between its pages. mdBook is installed from crates.io once, under ~/.cache/tuskfish.
# --screenshot: also saves the first page, as headless Chromium shows it, to docs/book-first-page.png.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
ensure_tools
MDBOOK_VERSION=0.5.4
root="${XDG_CACHE_HOME:-$HOME/.cache}/tuskfish/mdbook/$MDBOOK_VERSION"
mdbook="$root/bin/mdbook"
if ! "$mdbook" --version >/dev/null 2>&1; then
  log "installing mdBook $MDBOOK_VERSION into $root (once)"
  cargo install --locked --quiet --version "$MDBOOK_VERSION" --root "$root" --no-default-features --features search mdbook
fi
out=$("$mdbook" build docs 2>&1) || { echo "$out" >&2; exit 1; }
if echo "$out" | grep -E "WARN|ERROR" >&2; then
  log "mdBook warned (above): the book must build clean"
  exit 1
fi
python3 hack/check-links.py
if [ "${1:-}" = --screenshot ]; then
  ensure_tools --browser
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,860 \
    --screenshot="$PWD/docs/book-first-page.png" "file://$PWD/target/book/index.html" 2>/dev/null
fi
log "the book is in target/book/index.html"
