#!/usr/bin/env bash
# Deletes the kind cluster tools/kind-up.sh created: tools/kind/down.sh.
exec "$(dirname "$0")/kind/down.sh" "$@"
