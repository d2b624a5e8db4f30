#!/usr/bin/env bash
# Tear down what dev/up.sh created: the kind cluster (with MinIO, Secrets, RBAC and pods in
# it), the worker image, and the local state (kubeconfigs, credentials, Airflow home).
# Usage: dev/down.sh [--keep-image]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${AMR_KIND_CLUSTER:-airflow-mapreduce}"
IMAGE="airflow-mapreduce-worker:dev"
STATE="${AMR_DEV_STATE:-$ROOT/.dev-stack}"

if command -v kind >/dev/null 2>&1 && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "==> deleting kind cluster '$CLUSTER'"
  kind delete cluster --name "$CLUSTER" --kubeconfig "$STATE/admin.kubeconfig"
fi
if [ "${1:-}" != "--keep-image" ] && command -v docker >/dev/null 2>&1 \
   && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "==> removing image $IMAGE"
  docker image rm "$IMAGE" >/dev/null
fi
case "$STATE" in
  "$ROOT"/.dev-stack | "$ROOT"/.dev-stack/) rm -rf -- "$STATE" ;;
  *) echo "==> leaving custom state folder $STATE in place (remove it yourself)" ;;
esac
echo "Dev stack removed."
