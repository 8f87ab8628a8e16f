#!/usr/bin/env bash
# Peak and final resident memory of one explaind binary serving MODEL under a fixed, deterministic
# workload (IG with 47 steps: batches of 16, 16 and 16 rows; classify with 4 callers; all feature
# maps in float16), for comparing allocator settings or builds with each other. WORKLOAD=mixed
# runs instead 16 callers each of classify, Grad-CAM and saliency in turn, so that all three graphs
# (forward, head, gradient) run full batches. WORKLOAD=tails runs Ablation-CAM at every spatial
# layer in turn, then at the first again, printing the resident memory after each: each layer's
# tail graph is made on first use, and at most --max-lazy-graphs are held (SERVER_ENV can set
# EXPLAIN_MAX_LAZY_GRAPHS).
#   bench/peak-rss.sh [BINARY]   (MODEL, PORT, WORKLOAD from the environment; BINARY defaults to the release build)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
BINARY=${1:-$ROOT/target/release/explaind}
MODEL=${MODEL:-$ROOT/../shared/fixtures/resnet18_seed1.legacy.onnx}
PORT=${PORT:-50070}
cd "$ROOT"
cargo build --release --locked -p explain-client
start_server "$BINARY" "$PORT" "$(mktemp)" --model "$MODEL"
rss() { awk "/$1/ {print int(\$2 / 1024)}" "/proc/$server/status"; }
loaded=$(rss VmRSS)
bench() { target/release/explain-bench --endpoint "http://127.0.0.1:$PORT" --warmup 2 "$@"; }
if [[ ${WORKLOAD:-} == mixed ]]; then
  for method in classify grad-cam saliency; do
    bench --duration 5 --methods "$method" --concurrency 16
  done
elif [[ ${WORKLOAD:-} == tails ]]; then
  explain() { target/release/explain --endpoint "http://127.0.0.1:$PORT" "$@"; }
  layers=$(explain info | awk '/^layers/ {on = 1; next} on && /\[-1, [0-9]+, [0-9]+, [0-9]+\]/ {print $1}')
  maps=$(mktemp -d)
  for layer in $layers $(head -n 1 <<< "$layers"); do
    started=$(date +%s%N)
    explain run --method ablation-cam --layer "$layer" --out "$maps" "$ROOT/samples/shapes/images/00000.png" > /dev/null
    echo "Ablation-CAM at $layer: $(( ($(date +%s%N) - started) / 1000000 )) ms, RSS $(rss VmRSS) MiB"
  done
  rm -r "$maps"
else
  bench --duration 15 --methods integrated-gradients --steps 47 --concurrency 1
  bench --duration 10 --methods classify --concurrency 4
  bench --duration 10 --methods feature-maps --encoding float16 --concurrency 1
fi
echo "$BINARY: loaded $loaded MiB, final $(rss VmRSS) MiB, peak $(rss VmHWM) MiB"
