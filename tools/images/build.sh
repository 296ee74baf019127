#!/usr/bin/env bash
# Builds one image per component from the repository root and tags it
# mizzen/<name>:<tag>. With --kind-load, loads each into a kind cluster.
#
#   tools/images/build.sh                          # build all, tag 0.1.0
#   tools/images/build.sh --tag dev pilot citadel  # some, another tag
#   tools/images/build.sh --kind-load --cluster mizzen
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=0.1.0
cluster=mizzen
kind_load=false
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --cluster) cluster="$2"; shift 2 ;;
    --kind-load) kind_load=true; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed -E 's/^# ?//'; exit 0 ;;
    -*) echo "build.sh: unknown flag $1" >&2; exit 2 ;;
    *) only+=("$1"); shift ;;
  esac
done

# image name → Dockerfile (the list the deploy checks compare against)
declare -A dockerfiles=(
  [pilot]=apps/pilot/Dockerfile
  [citadel]=apps/citadel/Dockerfile
  [sidecar-agent]=apps/sidecar-agent/Dockerfile
  [ingress-gateway]=apps/ingress-gateway/Dockerfile
  [egress-gateway]=apps/egress-gateway/Dockerfile
  [telemetry-collector]=apps/telemetry-collector/Dockerfile
  [bookinfo-productpage]=apps/bookinfo/productpage/Dockerfile
  [bookinfo-details]=apps/bookinfo/details/Dockerfile
  [bookinfo-reviews]=apps/bookinfo/reviews/Dockerfile
  [bookinfo-ratings]=apps/bookinfo/ratings/Dockerfile
)
order=(pilot citadel sidecar-agent ingress-gateway egress-gateway telemetry-collector
  bookinfo-productpage bookinfo-details bookinfo-reviews bookinfo-ratings)
[ "${#only[@]}" -gt 0 ] && order=("${only[@]}")

command -v docker >/dev/null || { echo "build.sh: docker is not installed" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "build.sh: no Docker engine answers (is the daemon running?)" >&2; exit 1; }
if $kind_load; then
  command -v kind >/dev/null || { echo "build.sh: --kind-load needs kind on PATH" >&2; exit 1; }
fi

for name in "${order[@]}"; do
  file="${dockerfiles[$name]:-}"
  [ -n "$file" ] || { echo "build.sh: no image named $name" >&2; exit 2; }
  echo "==> mizzen/$name:$tag ($file)"
  DOCKER_BUILDKIT=1 docker build -f "$file" -t "mizzen/$name:$tag" .
  if $kind_load; then
    kind load docker-image "mizzen/$name:$tag" --name "$cluster"
  fi
done
