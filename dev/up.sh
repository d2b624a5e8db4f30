#!/usr/bin/env bash
# One command for a local Kubernetes dev stack, then the word-count DAG on it:
#   kind cluster -> namespaces + least-privilege RBAC -> generated S3 credentials (Secrets)
#   -> MinIO -> worker image built and loaded into kind -> Airflow (on this machine) with a
#   `kubernetes_default` connection as the RBAC-limited service account and an `aws_default`
#   connection to MinIO -> `airflow dags test wordcount_kind` -> top words.
# Needs: docker, kind, kubectl, Python 3.11 + git (for .venv, as scripts/example.sh).
# Usage: dev/up.sh [DAG_ID]   (wordcount_kind | wordcount_python_kind)   Tear down: dev/down.sh
# State (kubeconfigs, generated credentials, Airflow home) lives in .dev-stack/ (mode 700).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DAG_ID="${1:-wordcount_kind}"
CLUSTER="${AMR_KIND_CLUSTER:-airflow-mapreduce}"
IMAGE="airflow-mapreduce-worker:dev"  # the image the dev/dags/*.yaml jobs name
STATE="${AMR_DEV_STATE:-$ROOT/.dev-stack}"
NAMESPACE=mapreduce
S3_HOST_ENDPOINT="http://127.0.0.1:30900"  # MinIO's NodePort via dev/kind-config.yaml
BUCKET=mapreduce

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "dev/up.sh: '$1' not found; $2" >&2; exit 1; }
}
need docker "install Docker (https://docs.docker.com/get-docker/)"
need kind "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
docker info >/dev/null 2>&1 || { echo "dev/up.sh: the Docker daemon is not reachable" >&2; exit 1; }

mkdir -p "$STATE"
chmod 700 "$STATE"
umask 077  # every file written below (kubeconfigs, credentials) is private
# Never touch the user's ~/.kube/config: kind and kubectl use the stack's own kubeconfig.
export KUBECONFIG="$STATE/admin.kubeconfig"

echo "==> kind cluster '$CLUSTER'"
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config "$ROOT/dev/kind-config.yaml" --wait 180s
fi
kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null

echo "==> namespaces, RBAC"
kubectl apply -f "$ROOT/dev/k8s/namespaces.yaml" -f "$ROOT/dev/k8s/rbac.yaml"

echo "==> S3 credentials (generated once, kept in Secrets and $STATE/s3.env)"
if [ ! -s "$STATE/s3.env" ]; then
  key="amr$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  secret="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$key" "$secret" >"$STATE/s3.env"
  unset key secret
fi
for ns in minio "$NAMESPACE"; do
  # Rendered and applied through a pipe: the values never land in a manifest file.
  kubectl create secret generic s3-credentials --namespace "$ns" \
    --from-env-file="$STATE/s3.env" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
done

echo "==> MinIO"
kubectl apply -f "$ROOT/dev/k8s/minio.yaml"
kubectl --namespace minio rollout status deployment/minio --timeout=300s

echo "==> worker image $IMAGE"
DOCKER_BUILDKIT=1 docker build --file "$ROOT/dev/Dockerfile.worker" --tag "$IMAGE" "$ROOT"
kind load docker-image "$IMAGE" --name "$CLUSTER"

echo "==> Airflow's kubeconfig: service account $NAMESPACE/mapreduce-launcher (not cluster-admin)"
LAUNCHER="$STATE/launcher.kubeconfig"
cp "$KUBECONFIG" "$LAUNCHER"
token="$(kubectl --namespace "$NAMESPACE" create token mapreduce-launcher --duration=24h)"
kubectl --kubeconfig "$LAUNCHER" config set-credentials mapreduce-launcher \
  --token="$token" >/dev/null
unset token
kubectl --kubeconfig "$LAUNCHER" config set-context --current \
  --user=mapreduce-launcher --namespace="$NAMESPACE" >/dev/null
if kubectl --kubeconfig "$LAUNCHER" auth can-i list nodes >/dev/null 2>&1; then
  echo "dev/up.sh: the launcher identity can list nodes; RBAC is wider than intended" >&2
  exit 1
fi

echo "==> Python environment (.venv)"
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh"

# Everything Airflow needs, in one file to source (also for `pytest -m kubernetes`).
# Connections come from environment variables, so no credential is stored in Airflow's DB.
python - "$STATE" "$LAUNCHER" "$S3_HOST_ENDPOINT" "$ROOT" <<'PY'
import json, shlex, sys
from pathlib import Path

state, kubeconfig, endpoint, root = sys.argv[1:]
creds = dict(line.split("=", 1) for line in Path(state, "s3.env").read_text().split())
env = {
    "AIRFLOW_HOME": f"{state}/airflow",
    "AIRFLOW__CORE__DAGS_FOLDER": f"{root}/dev/dags",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "KUBECONFIG": kubeconfig,
    "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": kubeconfig}}
    ),
    "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
        "conn_type": "aws",
        "login": creds["AWS_ACCESS_KEY_ID"],
        "password": creds["AWS_SECRET_ACCESS_KEY"],
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }),
    "AMR_DEV_S3_ENDPOINT": endpoint,
}
lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
Path(state, "env.sh").write_text("\n".join(lines) + "\n")
PY
# shellcheck source=/dev/null
source "$STATE/env.sh"

echo "==> input data: $ROOT/dags/data/wordcount -> s3://$BUCKET/input/wordcount/"
python - "$BUCKET" "$ROOT/dags/data/wordcount" <<'PY'
import pathlib, sys
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

bucket, folder = sys.argv[1:]
hook = S3Hook(aws_conn_id="aws_default")  # the connection plan/shuffle/commit use
if not hook.check_for_bucket(bucket):
    hook.create_bucket(bucket_name=bucket)
for path in sorted(pathlib.Path(folder).iterdir()):
    hook.load_file(str(path), f"input/wordcount/{path.name}", bucket, replace=True)
PY

echo "==> airflow dags test $DAG_ID (log: $STATE/$DAG_ID.log)"
mkdir -p "$AIRFLOW_HOME"
airflow db migrate >"$STATE/db-migrate.log" 2>&1
OUTPUT="s3://$BUCKET/output/$DAG_ID/$(date -u +%Y%m%dT%H%M%S)"
if ! airflow dags test "$DAG_ID" --conf "{\"output\": \"$OUTPUT\"}" >"$STATE/$DAG_ID.log" 2>&1 \
   || ! grep -q "state=success" "$STATE/$DAG_ID.log"; then
  tail -n 40 "$STATE/$DAG_ID.log"
  echo "dev/up.sh: DAG run failed; log: $STATE/$DAG_ID.log; pods: kubectl -n $NAMESPACE get pods" >&2
  exit 1
fi
python - "$OUTPUT" <<'PY'
import json, sys
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

output = sys.argv[1].removeprefix("s3://")
bucket, prefix = output.split("/", 1)
hook = S3Hook(aws_conn_id="aws_default")
manifest = json.loads(hook.read_key(f"{prefix}/_manifest.json", bucket))
counts = {}
for part in manifest["files"]:
    key = part["uri"].removeprefix(f"s3://{bucket}/")
    for line in hook.read_key(key, bucket).splitlines():
        word, count = line.split("\t")
        counts[word] = int(count)
print(f"{manifest['records']} distinct words in {len(manifest['files'])} part file(s) at {sys.argv[1]}")
for word, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]:
    print(f"{count:>8}  {word}")
PY
cat <<EOF

Dev stack is up. To use it from this shell:   source $STATE/env.sh
  airflow dags test wordcount_python_kind      # the callables variant
  .venv/bin/pytest -m kubernetes tests/kubernetes   # the same DAGs as tests on this cluster
  kubectl -n $NAMESPACE get pods --watch
Tear down: dev/down.sh
EOF
