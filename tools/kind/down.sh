#!/usr/bin/env bash
# Deletes the kind cluster up.sh created (and with it everything in it).
set -euo pipefail
CLUSTER="${CLUSTER:-mizzen}"
command -v kind >/dev/null || { echo "down.sh: kind is not installed" >&2; exit 1; }
if kind get clusters | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
else
  echo "no kind cluster named $CLUSTER"
fi
