#!/usr/bin/env bash
# Copies what the images need at run time from a built workspace into OUT:
# the root package.json and package-lock.json, and for every workspace package
# its manifest and everything its build produced or ships beside the code
# (dist/, protos/, static/, native build/ ...), leaving out sources, tests and
# dependencies. The Dockerfiles run it in their build stage; the deploy checks
# run the same script to start each app from this layout with only its
# production dependencies.
#
#   tools/images/stage-runtime.sh OUT
set -euo pipefail
out="${1:?usage: stage-runtime.sh OUT}"
cd "$(dirname "$0")/../.."

mkdir -p "$out"
cp package.json package-lock.json "$out/"
for p in libs/* apps/* apps/bookinfo/*; do
  [ -f "$p/package.json" ] || continue
  mkdir -p "$out/$p"
  for f in "$p"/* ; do
    case "$(basename "$f")" in
      node_modules|src|test|docs|test-artifacts|dashboard|scripts|binding.gyp|Dockerfile|README.md|tsconfig.json|tsconfig.build.json|vitest.config.ts) ;;
      *) cp -R "$f" "$out/$p/" ;;
    esac
  done
done
# Tools and e2e only for the lockfile's sake: npm ci checks every workspace.
for p in tools/* e2e; do
  [ -f "$p/package.json" ] || continue
  mkdir -p "$out/$p"
  cp "$p/package.json" "$out/$p/"
done
