#!/usr/bin/env bash
# Builds one image per component from the repository root (the build context)
# and tags it mizzen/<name>:<version of package.json>. With --kind-load, loads
# each into a kind cluster. Names are image names or app directories.
#
#   tools/images/build.sh                          # build all
#   tools/images/build.sh --tag dev pilot citadel  # some, another tag
#   tools/images/build.sh apps/pilot               # what `npx nx run @mizzen/pilot:docker` runs
#   tools/images/build.sh --kind-load --cluster mizzen
#   tools/images/build.sh --dry-run                # print the docker/kind commands, run nothing
set -euo pipefail
cd "$(dirname "$0")/../.."

tag="$(node -p "require('./package.json').version")"
cluster=mizzen
kind_load=false
dry_run=false
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --cluster) cluster="$2"; shift 2 ;;
    --kind-load) kind_load=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed -E 's/^# ?//'; exit 0 ;;
    -*) echo "build.sh: unknown flag $1" >&2; exit 2 ;;
    *) only+=("$1"); shift ;;
  esac
done

# image name → Dockerfile (the list the deploy checks compare with apps/*/Dockerfile)
declare -A dockerfiles=(
  [pilot]=apps/pilot/Dockerfile
  [citadel]=apps/citadel/Dockerfile
  [sidecar-agent]=apps/sidecar-agent/Dockerfile
  [ingress-gateway]=apps/ingress-gateway/Dockerfile
  [egress-gateway]=apps/egress-gateway/Dockerfile
  [telemetry-collector]=apps/telemetry-collector/Dockerfile
  [cli]=apps/cli/Dockerfile
  [bookinfo-productpage]=apps/bookinfo/productpage/Dockerfile
  [bookinfo-details]=apps/bookinfo/details/Dockerfile
  [bookinfo-reviews]=apps/bookinfo/reviews/Dockerfile
  [bookinfo-ratings]=apps/bookinfo/ratings/Dockerfile
)
order=(pilot citadel sidecar-agent ingress-gateway egress-gateway telemetry-collector cli
  bookinfo-productpage bookinfo-details bookinfo-reviews bookinfo-ratings)
if [ "${#only[@]}" -gt 0 ]; then
  order=()
  for name in "${only[@]}"; do
    # An app directory (apps/pilot, apps/bookinfo/details/) names its image.
    dir="${name%/}"
    case "$dir" in
      apps/bookinfo/*) name="bookinfo-${dir#apps/bookinfo/}" ;;
      apps/*) name="${dir#apps/}" ;;
    esac
    order+=("$name")
  done
fi

export DOCKER_BUILDKIT=1
run() {
  if $dry_run; then echo "$*"; else "$@"; fi
}

if ! $dry_run; then
  command -v docker >/dev/null || { echo "build.sh: docker is not installed" >&2; exit 1; }
  docker info >/dev/null 2>&1 || { echo "build.sh: no Docker engine answers (is the daemon running?)" >&2; exit 1; }
  if $kind_load; then
    command -v kind >/dev/null || { echo "build.sh: --kind-load needs kind on PATH" >&2; exit 1; }
  fi
fi

for name in "${order[@]}"; do
  file="${dockerfiles[$name]:-}"
  [ -n "$file" ] || { echo "build.sh: no image named $name (images: ${!dockerfiles[*]})" >&2; exit 2; }
  $dry_run || echo "==> mizzen/$name:$tag ($file)"
  run docker build -f "$file" -t "mizzen/$name:$tag" .
  if $kind_load; then
    run kind load docker-image "mizzen/$name:$tag" --name "$cluster"
  fi
done
