#!/usr/bin/env bash
# A kind cluster running Mizzen and Bookinfo, from nothing:
#   1. create the cluster (tools/kind/kind-config.yaml)
#   2. install cert-manager (pinned) and wait for its webhook
#   3. build every image and `kind load` it
#   4. kubectl apply -k deploy/overlays/kind, wait for the control plane
#   5. deploy Bookinfo (namespace bookinfo, labelled istio-injection=enabled)
#   6. smoke-test http://localhost:30080/productpage
# Needs docker (with a running engine), kind and kubectl on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${CLUSTER:-mizzen}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.16.2}"
TAG=0.1.0

step() { printf '\n==> %s\n' "$*"; }
# Waits for a Deployment; on failure shows the namespace's pods and stops.
rollout() {
  local ns="$1" deploy="$2" timeout="$3"
  if ! kubectl -n "$ns" rollout status "deploy/$deploy" --timeout="$timeout"; then
    kubectl -n "$ns" get pods -o wide >&2
    echo "up.sh: deploy/$deploy in $ns did not become ready (kubectl -n $ns describe deploy/$deploy)" >&2
    exit 1
  fi
}
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "up.sh: $tool is not installed" >&2; exit 1; }
done

step "kind cluster $CLUSTER"
if kind get clusters | grep -qx "$CLUSTER"; then
  echo "cluster $CLUSTER exists; reusing it"
else
  kind create cluster --name "$CLUSTER" --config tools/kind/kind-config.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

step "cert-manager $CERT_MANAGER_VERSION"
kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
for d in cert-manager cert-manager-webhook cert-manager-cainjector; do
  rollout cert-manager "$d" 180s
done

step "images (tag $TAG) into kind"
tools/images/build.sh --tag "$TAG" --kind-load --cluster "$CLUSTER"
docker pull redis:7.4-alpine >/dev/null && kind load docker-image redis:7.4-alpine --name "$CLUSTER"

step "control plane: kubectl apply -k deploy/overlays/kind"
kubectl apply -k deploy/overlays/kind --server-side --force-conflicts
kubectl wait --for=condition=Established crd --all --timeout=60s
kubectl -n istio-system wait --for=condition=Ready certificate --all --timeout=120s
for d in istiod istio-citadel istio-ingressgateway istio-egressgateway istio-telemetry istio-telemetry-redis; do
  rollout istio-system "$d" 180s
done

step "Bookinfo"
kubectl apply -k deploy/samples/bookinfo
for d in details-v1 ratings-v1 reviews-v1 reviews-v2 reviews-v3 productpage-v1; do
  rollout bookinfo "$d" 240s
done

step "smoke test: http://localhost:30080/productpage"
for i in $(seq 1 60); do
  if curl -fsS -o /dev/null http://localhost:30080/productpage; then
    echo "productpage answers through the ingress gateway"
    echo
    echo "Try: kubectl get all -n istio-system"
    echo "     kubectl get mutatingwebhookconfiguration istio-sidecar-injector"
    echo "     kubectl -n bookinfo get configmap istio-ca-root-cert"
    exit 0
  fi
  sleep 2
done
echo "up.sh: productpage did not answer on http://localhost:30080/productpage" >&2
kubectl -n istio-system get pods
kubectl -n bookinfo get pods
exit 1
