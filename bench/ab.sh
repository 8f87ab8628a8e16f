#!/usr/bin/env bash
# A/B of two explaind builds (or one build under two settings) with one client. Both servers run
# at once on MODEL, each idle while the other is measured, and short slices alternate between
# them (ROUNDS of DURATION seconds per method and side), so that the machine's drift over minutes
# falls on both sides alike. Prints each slice and the mean req/s per method and side.
#   bench/ab.sh OLD_EXPLAIND NEW_EXPLAIND
# Environment: MODEL, METHODS, ROUNDS, DURATION, PORT (the old side; the new one uses PORT+1),
# BENCH_ARGS (more explain-bench flags, e.g. "--encoding float16"), and OLD_ENV / NEW_ENV, settings
# added to each server's environment, to compare one build with two settings:
#   OLD_ENV=EXPLAIN_INTRA_OP_SPINNING=false bench/ab.sh target/release/explaind target/release/explaind
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
MODEL=${MODEL:-$ROOT/../shared/fixtures/resnet18_seed1.legacy.onnx}
METHODS=${METHODS:-classify saliency feature-maps}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-4}
PORT=${PORT:-50071}
ensure_onnxruntime
ensure_grpcurl
cd "$ROOT"
cargo build --release --locked -p explain-client --bin explain-bench
for side in old new; do
  if [[ $side == old ]]; then bin=$1 settings=${OLD_ENV:-} port=$PORT; else bin=$2 settings=${NEW_ENV:-} port=$((PORT + 1)); fi
  SERVER_ENV=$settings start_server "$bin" "$port" /dev/null --model "$MODEL"
done
echo "old: $1 ${OLD_ENV:-}"
echo "new: $2 ${NEW_ENV:-}"
for round in $(seq "$ROUNDS"); do
  for method in $METHODS; do
    for side in old new; do
      if [[ $side == old ]]; then port=$PORT; else port=$((PORT + 1)); fi
      # shellcheck disable=SC2086  # BENCH_ARGS are words
      rate=$(target/release/explain-bench --endpoint "http://127.0.0.1:$port" --methods "$method" --concurrency 1 \
        --warmup 3 --duration "$DURATION" ${BENCH_ARGS:-} | awk '$1 == 1 && NF >= 7 { print $4; exit }')
      echo "round $round $method $side $rate req/s"
    done
  done
done | tee /dev/stderr | awk '{ sum[$3 " " $4] += $5; n[$3 " " $4]++ }
  END { for (key in sum) printf "mean %s %.2f req/s\n", key, sum[key] / n[key] }' | sort
