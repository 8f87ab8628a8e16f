#!/usr/bin/env bash
# Overload and soak: finds the saturation throughput of one server, then drives it for
# SECONDS_TOTAL at twice that rate without client retries — once with patient callers, once with
# CANCEL_FRACTION of the callers abandoning their calls at random — sampling the server's resident
# memory every 10 s. Writes the explain-bench reports and rss-*.csv under OUT.
#   bench/overload.sh   (MODEL, OUT, SECONDS_TOTAL, METHODS, QUEUE, CANCEL_FRACTION, PORT from the environment)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
OUT=${OUT:-$ROOT/bench/results/overload-$(date +%Y-%m-%d)}
SECONDS_TOTAL=${SECONDS_TOTAL:-600}
METHODS=${METHODS:-saliency,classify,grad-cam}
QUEUE=${QUEUE:-64}
CANCEL_FRACTION=${CANCEL_FRACTION:-0.3}
PORT=${PORT:-50063}
cd "$ROOT"
mkdir -p "$OUT"
model=()
[[ -n ${MODEL:-} ]] && model=(--model "$MODEL")
start_release_server "$PORT" "$OUT/server.log" "${model[@]}" --queue-capacity "$QUEUE"
bench=(target/release/explain-bench --endpoint "http://127.0.0.1:$PORT" --methods "$METHODS" --no-retries)

# Saturation: enough callers to keep the engine busy.
"${bench[@]}" --concurrency 16 --warmup 5 --duration 30 --json "$OUT/saturation.json" | tee "$OUT/saturation.txt"
rate=$(python3 -c "import json,sys; print(round(2 * json.load(open(sys.argv[1]))['results'][0]['throughput_rps'], 1))" "$OUT/saturation.json")
echo "saturation x 2 = $rate requests/s" | tee "$OUT/rate.txt"

sample() {  # sample NAME: the server's RSS every 10 s until stopped
  echo "seconds,rss_kib" > "$OUT/rss-$1.csv"
  local start; start=$(date +%s)
  while kill -0 "$server" 2>/dev/null; do
    echo "$(( $(date +%s) - start )),$(awk '/VmRSS/ {print $2}' "/proc/$server/status")" >> "$OUT/rss-$1.csv"
    sleep 10
  done
}
for phase in patient cancelling; do
  fraction=0
  [[ $phase == cancelling ]] && fraction=$CANCEL_FRACTION
  sample "$phase" & sampler=$!
  "${bench[@]}" --rate "$rate" --warmup 10 --duration "$SECONDS_TOTAL" --cancel-fraction "$fraction" \
    --json "$OUT/$phase.json" | tee "$OUT/$phase.txt"
  kill "$sampler" 2>/dev/null || true
done
grep VmHWM "/proc/$server/status" | tee "$OUT/server-peak-rss.txt"
"$CACHE/bin/grpcurl" -plaintext -d '{"service":"explain.v1.ExplainService"}' "127.0.0.1:$PORT" grpc.health.v1.Health/Check | tee "$OUT/health-after.txt"
