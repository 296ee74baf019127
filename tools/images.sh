#!/usr/bin/env bash
# Builds and tags every image (mizzen/<name>:<version>) from the repository
# root, ready for `kind load docker-image`; --kind-load [--cluster NAME] loads
# them too. The same as tools/images/build.sh (see its --help), which each
# app's Nx `docker` target runs for that app alone.
exec "$(dirname "$0")/images/build.sh" "$@"
