#!/usr/bin/env bash
# A/B of two explaind builds with one client: each server alone in turn on MODEL, explain-bench
# (this checkout's release build) at one caller for each of METHODS.
#   bench/ab.sh OLD_EXPLAIND NEW_EXPLAIND   (MODEL, METHODS, DURATION, PORT from the environment)
# OLD_ENV and NEW_ENV add settings to each server's environment, to compare one build with two
# settings: OLD_ENV=EXPLAIN_INTRA_OP_SPINNING=false bench/ab.sh target/release/explaind target/release/explaind
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
MODEL=${MODEL:-$ROOT/../shared/fixtures/resnet18_seed1.legacy.onnx}
METHODS=${METHODS:-classify saliency feature-maps}
DURATION=${DURATION:-15}
PORT=${PORT:-50071}
ensure_onnxruntime
ensure_grpcurl
cd "$ROOT"
cargo build --release --locked -p explain-client --bin explain-bench
for side in old new; do
  if [[ $side == old ]]; then bin=$1 settings=${OLD_ENV:-}; else bin=$2 settings=${NEW_ENV:-}; fi
  # shellcheck disable=SC2086  # settings are words of NAME=VALUE
  env $settings EXPLAIN_ORT_LIBRARY="$ORT_LIBRARY" EXPLAIN_NO_CACHE=1 "$bin" --log-filter warn serve --model "$MODEL" \
    --listen "127.0.0.1:$PORT" > /dev/null 2>&1 &
  pid=$!
  for _ in $(seq 180); do
    "$CACHE/bin/grpcurl" -plaintext -d '{"service":"explain.v1.ExplainService"}' "127.0.0.1:$PORT" \
      grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"' && break
    sleep 1
  done
  for method in $METHODS; do
    echo "== $bin ${settings:-} $method"
    target/release/explain-bench --endpoint "http://127.0.0.1:$PORT" --methods "$method" --concurrency 1 \
      --warmup 3 --duration "$DURATION" | tail -4
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
