#!/usr/bin/env bash
# A kind cluster running Mizzen and Bookinfo, from nothing: tools/kind/up.sh
# (see the steps there and in the README's Kubernetes section).
exec "$(dirname "$0")/kind/up.sh" "$@"
