#!/usr/bin/env bash
# Peak and final resident memory of one explaind binary serving MODEL under a fixed, deterministic
# workload (IG with 47 steps: batches of 16, 16 and 16 rows; classify with 4 callers; all feature
# maps in float16), for comparing allocator settings or builds with each other. WORKLOAD=mixed
# runs instead 16 callers each of classify, Grad-CAM and saliency in turn, so that all three graphs
# (forward, head, gradient) run full batches.
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
else
  bench --duration 15 --methods integrated-gradients --steps 47 --concurrency 1
  bench --duration 10 --methods classify --concurrency 4
  bench --duration 10 --methods feature-maps --encoding float16 --concurrency 1
fi
echo "$BINARY: loaded $loaded MiB, final $(rss VmRSS) MiB, peak $(rss VmHWM) MiB"
