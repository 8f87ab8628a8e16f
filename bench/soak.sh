#!/usr/bin/env bash
# A long run with a method mix, sampling the server's resident memory every 15 s, to show that
# memory does not grow. Writes rss.csv and the explain-bench report under OUT.
#   bench/soak.sh      (MODEL, OUT, SECONDS_TOTAL, CONCURRENCY, METHODS, PORT from the environment)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
MODEL=${MODEL:-$ROOT/../shared/fixtures/resnet18_seed1.legacy.onnx}
OUT=${OUT:-$ROOT/bench/results/soak-$(date +%Y-%m-%d)}
SECONDS_TOTAL=${SECONDS_TOTAL:-300}
CONCURRENCY=${CONCURRENCY:-4}
METHODS=${METHODS:-saliency,grad-cam,feature-maps,integrated-gradients,smooth-grad,classify}
PORT=${PORT:-50062}
cd "$ROOT"
mkdir -p "$OUT"
start_release_server "$PORT" "$OUT/server.log" --model "$MODEL"
echo "seconds,rss_kib" > "$OUT/rss.csv"
(start=$(date +%s); while kill -0 "$server" 2>/dev/null; do
   echo "$(( $(date +%s) - start )),$(awk '/VmRSS/ {print $2}' "/proc/$server/status")" >> "$OUT/rss.csv"; sleep 15; done) &
sampler=$!
target/release/explain-bench --endpoint "http://127.0.0.1:$PORT" --methods "$METHODS" --concurrency "$CONCURRENCY" \
  --warmup 5 --duration "$SECONDS_TOTAL" --json "$OUT/bench.json" | tee "$OUT/bench.txt"
kill "$sampler" 2>/dev/null || true
grep VmHWM "/proc/$server/status" | tee "$OUT/server-peak-rss.txt"
cat "$OUT/rss.csv"
