#!/usr/bin/env bash
# The benchmark, in one run so that ratios compare like with like: builds explaind and
# explain-bench (release), serves MODEL, drives it with explain-bench for each method (1 caller,
# and 16 callers for saliency), stops it, then runs the in-process baselines (PyTorch + Captum, and
# ONNX Runtime on the service's own augmented graph) on the same weights and inputs, and writes
# every JSON report and a summary table under OUT. Never part of the test suite.
#   bench/run.sh            (MODEL, OUT, DURATION, METHODS, THREADS may be set in the environment)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
MODEL=$(realpath "${MODEL:-$ROOT/../shared/fixtures/resnet18_seed1.legacy.onnx}")  # the baselines run from bench/
OUT=${OUT:-$ROOT/bench/results/$(date +%Y-%m-%d)}
DURATION=${DURATION:-10}
THREADS=${THREADS:-$(nproc)}
METHODS=${METHODS:-classify,feature-maps,saliency,grad-cam,guided-backprop,integrated-gradients,smooth-grad}
PORT=${PORT:-50061}
BENCH_VENV=$ROOT/bench/.venv
BENCH_PACKAGES=(torch==2.11.0 torchvision==0.26.0 captum==0.9.0 grad-cam==1.5.7 "onnxruntime==$ORT_VERSION" onnx==1.23.2 numpy==2.4.6)

ensure_onnxruntime
ensure_grpcurl
if [[ ! -f $BENCH_VENV/.explain-packages || $(cat "$BENCH_VENV/.explain-packages") != "${BENCH_PACKAGES[*]}" ]]; then
  say "creating the benchmark virtual environment (${BENCH_PACKAGES[*]})"
  "$PYTHON" -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/python" -m pip install -q --disable-pip-version-check "${BENCH_PACKAGES[@]}"
  echo "${BENCH_PACKAGES[*]}" > "$BENCH_VENV/.explain-packages"
fi
cd "$ROOT"
cargo build --release --locked -p explain-service -p explain-client
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)  # the baselines run from bench/
{ echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores";
  echo "model: $MODEL"; echo "threads: $THREADS"; echo "duration: ${DURATION}s per step"; } > "$OUT/machine.txt"
GRAPHS=$CACHE/bench/graphs
mkdir -p "$GRAPHS"
for graph in forward head gradient; do
  target/release/explaind --log-filter warn augment "$MODEL" --graph "$graph" -o "$GRAPHS/$graph.onnx" --ort-library "$ORT_LIBRARY"
done

# Starts explaind with extra flags; waits until it serves.
serve() {
  EXPLAIN_ORT_LIBRARY=$ORT_LIBRARY EXPLAIN_NO_CACHE=1 target/release/explaind --log-filter warn serve \
    --model "$MODEL" --listen "127.0.0.1:$PORT" --intra-op-threads "$THREADS" "$@" > "$OUT/server.log" 2>&1 &
  server=$!
  for _ in $(seq 120); do
    "$CACHE/bin/grpcurl" -plaintext -d '{"service":"explain.v1.ExplainService"}' "127.0.0.1:$PORT" grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"' && return
    sleep 1
  done
  echo "explaind did not start; see $OUT/server.log" >&2; exit 1
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; }
trap 'kill $server 2>/dev/null || true' EXIT
bench() { target/release/explain-bench --endpoint "http://127.0.0.1:$PORT" --duration "$DURATION" "$@"; }

# 1. Default settings: one caller per method (latency), and 16 callers of saliency (dynamic batching).
say "serving $MODEL on 127.0.0.1:$PORT (default settings)"
serve
"$CACHE/bin/grpcurl" -plaintext "127.0.0.1:$PORT" explain.v1.ExplainService/GetModelInfo > "$OUT/model-info.json"
layers=$("$PYTHON" -c 'import json,sys; print(",".join(l["tensor"] for l in json.load(open(sys.argv[1]))["layers"]))' "$OUT/model-info.json")
for method in ${METHODS//,/ }; do
  bench --methods "$method" --concurrency 1 --json "$OUT/service-$method-c1.json"
done
if [[ ,$METHODS, == *,saliency,* ]]; then
  bench --methods saliency --concurrency 16 --json "$OUT/service-saliency-c16.json"
fi
grep VmHWM "/proc/$server/status" > "$OUT/server-peak-rss.txt" || true
stop

# 2. Engine batches of one image, kept busy by 3 callers: the same batch as the in-process ceiling.
say "serving $MODEL with --max-batch-size 1"
serve --max-batch-size 1
for method in ${METHODS//,/ }; do
  # Methods of many rows run them as batches of their own; batches of one image would not compare.
  case $method in
    integrated-gradients | smooth-grad | score-cam | ablation-cam | occlusion | feature-ablation | gradient-shap | rise | deep-lift) continue ;;
  esac
  bench --methods "$method" --concurrency 3 --json "$OUT/service-$method-c3-b1.json"
done
stop

say "in-process baselines"
(cd bench && "$BENCH_VENV/bin/python" baselines.py --model "$MODEL" --graphs "$GRAPHS" \
  --layers "$layers" --methods "${METHODS//-/_}" --batches 1 --threads "$THREADS" --duration "$DURATION" \
  --json "$OUT/baselines-b1.json")
if [[ ,$METHODS, == *,saliency,* ]]; then
  (cd bench && "$BENCH_VENV/bin/python" baselines.py --model "$MODEL" --graphs "$GRAPHS" \
    --layers "$layers" --methods saliency --batches 16 --threads "$THREADS" --duration "$DURATION" \
    --json "$OUT/baselines-b16.json")
fi
"$PYTHON" bench/report.py "$OUT" | tee "$OUT/summary.md"
