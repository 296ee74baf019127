#!/usr/bin/env bash
# A kind cluster running Mizzen and Bookinfo, from nothing (tools/kind-up.sh
# runs this):
#   1. create the cluster (tools/kind/kind-config.yaml)
#   2. install cert-manager (pinned) and wait for it
#   3. build every image (tools/images.sh) and `kind load` it, Redis's too
#   4. kubectl apply -k deploy/overlays/kind; wait for the CRDs, the
#      certificates, cainjector filling the webhooks' caBundle (both webhooks
#      fail closed) and every control-plane rollout
#   5. deploy Bookinfo (namespace bookinfo, labelled istio-injection=enabled:
#      each pod gets mizzen-init and istio-proxy) and wait for every rollout
#   6. smoke-test http://localhost:30080/productpage, and HTTPS on 30443 with
#      the certificate cert-manager issued for the Gateway
# Needs docker (with a running engine), kind, kubectl and curl on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${CLUSTER:-mizzen}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.16.2}"
TAG="$(node -p "require('./package.json').version" 2>/dev/null || echo 0.1.0)"
REDIS_IMAGE=redis:7.4-alpine

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
# Waits until cainjector has put the CA into every webhook of a configuration.
wait_ca_bundle() {
  local kind="$1" name="$2" hooks bundles
  for _ in $(seq 1 60); do
    hooks="$(kubectl get "$kind" "$name" -o jsonpath='{range .webhooks[*]}{.name}{"\n"}{end}' | grep -c . || true)"
    bundles="$(kubectl get "$kind" "$name" -o jsonpath='{range .webhooks[*]}{.clientConfig.caBundle}{"\n"}{end}' | grep -c . || true)"
    if [ "$hooks" -gt 0 ] && [ "$bundles" = "$hooks" ]; then
      echo "$kind/$name: caBundle injected into $hooks webhook(s)"
      return 0
    fi
    sleep 2
  done
  echo "up.sh: cainjector did not fill the caBundle of $kind/$name (kubectl -n cert-manager logs deploy/cert-manager-cainjector)" >&2
  exit 1
}
for tool in docker kind kubectl curl node; do
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
tools/images.sh --tag "$TAG" --kind-load --cluster "$CLUSTER"
docker pull "$REDIS_IMAGE" >/dev/null && kind load docker-image "$REDIS_IMAGE" --name "$CLUSTER"

step "control plane: kubectl apply -k deploy/overlays/kind"
kubectl apply -k deploy/overlays/kind --server-side --force-conflicts
kubectl wait --for=condition=Established crd --all --timeout=60s
kubectl -n istio-system wait --for=condition=Ready certificate --all --timeout=120s
# The webhooks fail closed: until their caBundle is in, pods in bookinfo cannot be admitted.
wait_ca_bundle mutatingwebhookconfiguration istio-sidecar-injector
wait_ca_bundle validatingwebhookconfiguration istiod-istio-system
for d in istiod istio-citadel istio-ingressgateway istio-egressgateway istio-telemetry istio-telemetry-redis; do
  rollout istio-system "$d" 180s
done

step "Bookinfo"
kubectl apply -k deploy/samples/bookinfo
for d in details-v1 ratings-v1 reviews-v1 reviews-v2 reviews-v3 productpage-v1; do
  rollout bookinfo "$d" 240s
done

step "smoke test: http://localhost:30080/productpage and https://localhost:30443/productpage"
root_ca="$(mktemp)"
trap 'rm -f "$root_ca"' EXIT
kubectl -n istio-system get secret mizzen-root-ca -o jsonpath='{.data.ca\.crt}' | base64 -d >"$root_ca"
smoke() {
  for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "$@"; then return 0; fi
    sleep 2
  done
  echo "up.sh: no answer from curl $*" >&2
  kubectl -n istio-system get pods
  kubectl -n bookinfo get pods
  exit 1
}
smoke http://localhost:30080/productpage
echo "productpage answers through the ingress gateway"
smoke --cacert "$root_ca" https://localhost:30443/productpage
echo "and over HTTPS, with the certificate cert-manager issued (bookinfo-credential)"
echo
echo "Try: kubectl get all -n istio-system"
echo "     kubectl get mutatingwebhookconfiguration istio-sidecar-injector"
echo "     kubectl -n bookinfo get configmap istio-ca-root-cert"
echo "     kubectl -n bookinfo get pod -l app=productpage -o jsonpath='{.items[0].spec.containers[*].name}'"
