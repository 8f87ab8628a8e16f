#!/usr/bin/env bash
# The server's own CPU per call: serves MODEL with EXPLAIND (any build, under any extra
# environment given as NAME=VALUE arguments), drives it with explain-bench at one caller for each
# of METHODS, and prints, beside explain-bench's table, the server's minor page faults and
# utime + stime (clock ticks, from /proc/PID/stat) over the step, warm-up included, and its peak RSS.
# Divide by the "sent" count for a per-call figure; alternate builds in one sitting to compare.
#   bench/cpu-per-call.sh EXPLAIND [NAME=VALUE ...]   (MODEL, METHODS, DURATION, PORT from the environment)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
MODEL=${MODEL:-$ROOT/../shared/fixtures/resnet18_seed1.legacy.onnx}
METHODS=${METHODS:-feature-maps}
DURATION=${DURATION:-12}
PORT=${PORT:-50081}
ensure_onnxruntime
ensure_grpcurl
explaind=$(realpath "$1"); shift
cd "$ROOT"
cargo build --release --locked -p explain-client --bin explain-bench
env "$@" EXPLAIN_ORT_LIBRARY="$ORT_LIBRARY" EXPLAIN_NO_CACHE=1 "$explaind" --log-filter warn serve \
  --model "$MODEL" --listen "127.0.0.1:$PORT" > /dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 180); do
  "$CACHE/bin/grpcurl" -plaintext -d '{"service":"explain.v1.ExplainService"}' "127.0.0.1:$PORT" \
    grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"' && break
  sleep 1
done
counters() { awk '{print $10, $14, $15}' "/proc/$pid/stat"; }
for method in $METHODS; do
  echo "== $explaind $* $method"
  read -r faults0 user0 system0 < <(counters)
  target/release/explain-bench --endpoint "http://127.0.0.1:$PORT" --methods "$method" --concurrency 1 \
    --warmup 3 --duration "$DURATION" | tail -4
  read -r faults1 user1 system1 < <(counters)
  echo "   server: minor faults $((faults1 - faults0)), utime $((user1 - user0)) + stime $((system1 - system0)) ticks; $(grep VmHWM "/proc/$pid/status")"
done
