#!/usr/bin/env bash
# The benchmark, in one run so that ratios compare like with like: builds explaind and
# explain-bench (release), serves MODEL twice at once (default settings, and engine batches of one
# image), and for each method measures in turn the service over gRPC with explain-bench (1 caller;
# 3 callers at batch 1; 16 callers for saliency) and the in-process baselines on the same weights
# and inputs (PyTorch + Captum or pytorch-grad-cam, and ONNX Runtime on the service's own augmented
# graph). The whole sequence is repeated ROUNDS times, so that the service and its baselines are
# measured minutes apart at most and the machine's drift falls on both; the summary averages the
# rounds. Feature maps travel as float16. Writes every JSON report and the summary under OUT.
# Never part of the test suite.
#   bench/run.sh     (MODEL, OUT, DURATION per step and round, ROUNDS, METHODS, THREADS from the environment)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
MODEL=$(realpath "${MODEL:-$ROOT/../shared/fixtures/resnet18_seed1.legacy.onnx}")  # the baselines run from bench/
OUT=${OUT:-$ROOT/bench/results/$(date +%Y-%m-%d)}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
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
  echo "model: $MODEL"; echo "threads: $THREADS"; echo "duration: ${DURATION}s per step and round, ${ROUNDS} rounds"; } > "$OUT/machine.txt"
GRAPHS=$CACHE/bench/graphs
mkdir -p "$GRAPHS"
for graph in forward head gradient; do
  target/release/explaind --log-filter warn augment "$MODEL" --graph "$graph" -o "$GRAPHS/$graph.onnx" --ort-library "$ORT_LIBRARY"
done

# Starts explaind on PORT with the run's model and threads and extra flags; $server is its pid.
serve() {
  local port=$1; shift
  start_server target/release/explaind "$port" "$OUT/server-$port.log" --model "$MODEL" --intra-op-threads "$THREADS" "$@"
}
bench() {
  local port=$1 method=$2; shift 2
  local encoding=()
  [[ $method == feature-maps ]] && encoding=(--encoding float16)
  target/release/explain-bench --endpoint "http://127.0.0.1:$port" --duration "$DURATION" --methods "$method" \
    "${encoding[@]}" "$@"
}
baselines() {
  local method=$1 batch=$2 json=$3
  (cd bench && "$BENCH_VENV/bin/python" baselines.py --model "$MODEL" --graphs "$GRAPHS" --layers "$layers" \
    --methods "${method//-/_}" --batches "$batch" --threads "$THREADS" --duration "$DURATION" --json "$json")
}

# Both servers idle while the other, or a baseline, is measured (the engine's threads stop spinning
# between runs). The default one serves one caller per method (latency) and 16 callers of saliency
# (dynamic batching); the other runs engine batches of one image, kept busy by 3 callers: the same
# batch as the in-process ceiling.
say "serving $MODEL on 127.0.0.1:$PORT (default settings) and :$((PORT + 1)) (--max-batch-size 1)"
serve "$PORT"
default_server=$server
serve "$((PORT + 1))" --max-batch-size 1
"$CACHE/bin/grpcurl" -plaintext "127.0.0.1:$PORT" explain.v1.ExplainService/GetModelInfo > "$OUT/model-info.json"
layers=$("$PYTHON" -c 'import json,sys; print(",".join(l["tensor"] for l in json.load(open(sys.argv[1]))["layers"]))' "$OUT/model-info.json")
for round in $(seq "$ROUNDS"); do
  for method in ${METHODS//,/ }; do
    say "round $round: $method"
    bench "$PORT" "$method" --concurrency 1 --json "$OUT/service-$method-c1-r$round.json"
    case $method in
      # Methods of many rows run them as batches of their own; batches of one image would not compare.
      integrated-gradients | smooth-grad | score-cam | ablation-cam | occlusion | feature-ablation | gradient-shap | rise | deep-lift) ;;
      *) bench "$((PORT + 1))" "$method" --concurrency 3 --json "$OUT/service-$method-c3-b1-r$round.json" ;;
    esac
    baselines "$method" 1 "$OUT/baselines-$method-b1-r$round.json"
    if [[ $method == saliency ]]; then
      bench "$PORT" saliency --concurrency 16 --json "$OUT/service-saliency-c16-r$round.json"
      baselines saliency 16 "$OUT/baselines-saliency-b16-r$round.json"
    fi
  done
done
grep VmHWM "/proc/$default_server/status" > "$OUT/server-peak-rss.txt" || true
"$PYTHON" bench/report.py "$OUT" | tee "$OUT/summary.md"
