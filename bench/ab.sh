#!/usr/bin/env bash
# A/B of two explaind builds with one client: each server alone in turn on MODEL, explain-bench
# (this checkout's release build) at one caller for each of METHODS.
#   bench/ab.sh OLD_EXPLAIND NEW_EXPLAIND   (MODEL, METHODS, DURATION, PORT from the environment)
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
for bin in "$1" "$2"; do
  EXPLAIN_ORT_LIBRARY=$ORT_LIBRARY EXPLAIN_NO_CACHE=1 "$bin" --log-filter warn serve --model "$MODEL" \
    --listen "127.0.0.1:$PORT" > /dev/null 2>&1 &
  pid=$!
  for _ in $(seq 180); do
    "$CACHE/bin/grpcurl" -plaintext -d '{"service":"explain.v1.ExplainService"}' "127.0.0.1:$PORT" \
      grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"' && break
    sleep 1
  done
  for method in $METHODS; do
    echo "== $bin $method"
    target/release/explain-bench --endpoint "http://127.0.0.1:$PORT" --methods "$method" --concurrency 1 \
      --warmup 3 --duration "$DURATION" | tail -4
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
