#!/usr/bin/env bash
# End-to-end check on a real kind cluster (needs Docker and kind): build and load the operator and agent
# images, `helm install` charts/gpulane with the fake GPU backend, apply examples/, assert placement.
#
#   hack/kind-e2e.sh                   # create (or reuse) the cluster, test, delete the cluster
#   GPULANE_E2E_KEEP=1 hack/kind-e2e.sh  # keep the cluster afterwards for poking at it
#
# Environment: GPULANE_KIND_CLUSTER (default gpulane-e2e), GPULANE_KIND_IMAGE (node image, default: kind's),
# GPULANE_E2E_TIMEOUT (seconds per wait, default 300), HELM/KUBECTL/KIND/DOCKER (binaries; helm and
# kubectl default to PATH, then the gpulane cache filled by `make binaries`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${GPULANE_KIND_CLUSTER:-gpulane-e2e}"
TIMEOUT="${GPULANE_E2E_TIMEOUT:-300}"
NAMESPACE=gpulane-system
JOBS_NS=gpulane-e2e
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3

log() { printf '[kind-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

cached_tool() {  # the gpulane cache's copy of a tool (helm, kubectl), if `make binaries` ran
  "$PY" -m gpulane_dev.binaries locate 2>/dev/null | sed -n "s/^$1=//p"
}

DOCKER="${DOCKER:-$(command -v docker || true)}"
KIND="${KIND:-$(command -v kind || true)}"
HELM="${HELM:-$(command -v helm || cached_tool helm || true)}"
KUBECTL="${KUBECTL:-$(command -v kubectl || cached_tool kubectl || true)}"
for tool in DOCKER KIND HELM KUBECTL; do
  [[ -n "${!tool}" && -x "${!tool}" ]] || fail "$tool not found (install it, or set $tool=/path/to/binary)"
done
"$DOCKER" info >/dev/null 2>&1 || fail "the Docker daemon is not reachable ($DOCKER info failed)"
for dockerfile in operator/Dockerfile node_agent/Dockerfile; do
  [[ -f "$ROOT/$dockerfile" ]] || fail "$dockerfile is missing"
done

KUBECONFIG_FILE="$(mktemp -t gpulane-kind-kubeconfig.XXXXXX)"
export KUBECONFIG="$KUBECONFIG_FILE"
kc() { "$KUBECTL" "$@"; }

cleanup() {
  local code=$?
  if (( code != 0 )); then
    log "diagnostics after failure:"
    kc get nodes -o wide || true
    kc get gpunodes -o wide || true
    kc -n "$NAMESPACE" get pods -o wide || true
    kc -n "$JOBS_NS" get gsj,pods -o wide || true
    kc -n "$NAMESPACE" logs -l app.kubernetes.io/component=operator --tail=100 || true
    kc -n "$NAMESPACE" logs -l app.kubernetes.io/component=node-agent --tail=50 --prefix || true
  fi
  if [[ "${GPULANE_E2E_KEEP:-0}" == 1 ]]; then
    log "keeping cluster $CLUSTER (KUBECONFIG=$KUBECONFIG_FILE)"
  else
    "$KIND" delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    rm -f "$KUBECONFIG_FILE"
  fi
  exit "$code"
}
trap cleanup EXIT

# --- cluster -----------------------------------------------------------------------------------
if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
else
  log "creating kind cluster $CLUSTER (1 control plane + 2 workers)"
  "$KIND" create cluster --name "$CLUSTER" ${GPULANE_KIND_IMAGE:+--image "$GPULANE_KIND_IMAGE"} \
    --wait "${TIMEOUT}s" --config - <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
  - role: worker
EOF
fi
"$KIND" get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"

# --- images ------------------------------------------------------------------------------------
log "building images"
"$DOCKER" build -q -f "$ROOT/operator/Dockerfile" -t gpulane-operator:dev "$ROOT" >/dev/null
"$DOCKER" build -q -f "$ROOT/node_agent/Dockerfile" -t gpulane-agent:dev "$ROOT" >/dev/null
log "loading images into $CLUSTER"
"$KIND" load docker-image --name "$CLUSTER" gpulane-operator:dev gpulane-agent:dev

# --- install -----------------------------------------------------------------------------------
log "helm install charts/gpulane (fake GPU backend)"
"$HELM" upgrade --install gpulane "$ROOT/charts/gpulane" --namespace "$NAMESPACE" --create-namespace \
  -f "$ROOT/charts/gpulane/values-kind.yaml" --wait --timeout "${TIMEOUT}s"

nodes=$(kc get nodes -o name | wc -l)
log "waiting for $nodes GPUNode objects with 4 fake GPUs each"
deadline=$((SECONDS + TIMEOUT))
until [[ "$(kc get gpunodes -o jsonpath='{range .items[*]}{.status.gpus[*].index}{"\n"}{end}' 2>/dev/null \
          | grep -c '^0 1 2 3$' || true)" == "$nodes" ]]; do
  (( SECONDS < deadline )) || fail "GPUNodes not published by the agents within ${TIMEOUT}s"
  sleep 2
done
log "waiting for nodes to advertise gpulane.dev/gpu-memory (device plugin registered with the kubelet)"
until [[ "$(kc get nodes -o jsonpath='{range .items[*]}{.status.allocatable.gpulane\.dev/gpu-memory}{"\n"}{end}' \
          | grep -c '^256$' || true)" == "$nodes" ]]; do
  (( SECONDS < deadline )) || fail "nodes do not advertise 256 gpulane.dev/gpu-memory units within ${TIMEOUT}s"
  sleep 2
done

# --- examples ----------------------------------------------------------------------------------
kc create namespace "$JOBS_NS" --dry-run=client -o yaml | kc apply -f - >/dev/null
for example in "$ROOT"/examples/*.yaml; do
  log "applying examples/$(basename "$example")"
  if grep -q '^kind: ClusterKopfPeering' "$example"; then kc apply -f "$example"; else kc -n "$JOBS_NS" apply -f "$example"; fi
done

phase() { kc -n "$JOBS_NS" get gsj "$1" -o jsonpath='{.status.phase}' 2>/dev/null || true; }
wait_phase() {  # wait_phase JOB PHASE...
  local job=$1; shift
  local deadline=$((SECONDS + TIMEOUT)) got
  while true; do
    got=$(phase "$job")
    for want in "$@"; do [[ "$got" == "$want" ]] && { log "$job: $got"; return 0; }; done
    (( SECONDS < deadline )) || fail "$job is '$got', expected one of: $*"
    sleep 2
  done
}

# Placed jobs: the operator chose a node, GPU and lane, and the kubelet ran the pod with the
# device plugin's environment (that needs the agent's Allocate to have matched the pod).
for job in train-resnet share-a share-b share-c share-d; do
  wait_phase "$job" Scheduled Running Succeeded
  node=$(kc -n "$JOBS_NS" get gsj "$job" -o jsonpath='{.status.placement.node}')
  lane=$(kc -n "$JOBS_NS" get gsj "$job" -o jsonpath='{.status.placement.lane}')
  [[ -n "$node" && -n "$lane" ]] || fail "$job has no placement (node='$node' lane='$lane')"
  pod_node=$(kc -n "$JOBS_NS" get pods -l "gpulane.dev/job=$job" -o jsonpath='{.items[0].spec.nodeName}')
  [[ "$pod_node" == "$node" ]] || fail "$job: pod runs on '$pod_node', placement says '$node'"
  log "$job placed on $node lane $lane"
done
wait_phase train-resnet Running Succeeded
# Two 2Gi+6Gi jobs fill a 16Gi GPU's two lanes; four of them need lanes shared: count distinct lanes.
lanes=$(for job in share-a share-b share-c share-d; do
  kc -n "$JOBS_NS" get gsj "$job" -o jsonpath='{.status.placement.node}/{.status.placement.gpuIndex}/{.status.placement.lane}{"\n"}'
done | sort -u | wc -l)
(( lanes >= 2 && lanes <= 4 )) || fail "share-a..d occupy $lanes lanes"

# The job larger than any GPU stays Pending, Unschedulable.
wait_phase too-big Pending
reason=$(kc -n "$JOBS_NS" get gsj too-big -o jsonpath='{.status.conditions[?(@.type=="Scheduled")].reason}')
[[ "$reason" == Unschedulable ]] || fail "too-big: Scheduled reason is '$reason', expected Unschedulable"

log "PASS: every example placed as expected on kind cluster $CLUSTER"
