#!/usr/bin/env bash
# Stop what cluster-up.sh started, by the pids it recorded. Usage: cluster-down.sh STATE_DIR [--purge]
S=${1:?usage: cluster-down.sh STATE_DIR [--purge]}
# Control planes started inside it (the demo's prod-eu cluster) go first.
for sub in "$S"/*/; do
  [ -f "$sub/apiserver.pid" ] && "$0" "$sub"
done
# Flux first (hack/flux-up.sh, when the benchmark started it), while the API server still answers.
for p in kustomize-controller source-controller githttp operator kwok scheduler kcm apiserver etcd; do
  f="$S/$p.pid"
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$f"
done
[ "${2:-}" = "--purge" ] && rm -rf "$S"
exit 0
