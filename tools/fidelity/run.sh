#!/usr/bin/env bash
# The default model's figures in docs/fidelity.md. Draws the held-out shapes (tools/shapes set 2,
# COUNT pictures, default 500), serves the embedded default model, and runs `explain eval` for each
# method over them: accuracy, pointing game, relevance mass, deletion and insertion AUC against a
# random order. Then the cascading randomisation test: `explaind randomise` writes copies whose
# weights are redrawn from `head` down to `conv1`; each is served beside the trained model and every
# method's maps are compared (Spearman) over the first CASCADE_COUNT pictures (default 100).
# Writes OUT/methods.jsonl, OUT/cascade.jsonl and OUT/report.md (tools/fidelity/report.py); the
# pictures and the randomised copies go to .cache/fidelity (made again on each run).
# ONLY, an extended regular expression, keeps the methods it matches (e.g. ONLY='^(rise|occlusion)').
#   tools/fidelity/run.sh [OUT]      (default tools/fidelity/results/<date>)
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
OUT=${1:-$ROOT/tools/fidelity/results/$(date +%F)}
COUNT=${COUNT:-500}
CASCADE_COUNT=${CASCADE_COUNT:-100}
TRAINED_PORT=${TRAINED_PORT:-50071}
COPY_PORT=${COPY_PORT:-50072}
WORK=$CACHE/fidelity
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
: > "$OUT/methods.jsonl"
: > "$OUT/cascade.jsonl"

ensure_shapes_venv
say "drawing $COUNT held-out pictures"
"$CACHE/shapes-venv/bin/python" "$ROOT/tools/shapes/shapes.py" --out "$WORK/held-out" --count "$COUNT" --seed 2

METHODS=(
  "saliency"
  "input-x-gradient"
  "grad-cam --layer layer4.1"
  "grad-cam --layer layer3.1"
  "grad-cam-plus-plus --layer layer4.1"
  "xgrad-cam --layer layer4.1"
  "hires-cam --layer layer4.1"
  "layer-cam --layer layer4.1"
  "eigen-cam --layer layer4.1"
  "eigen-grad-cam --layer layer4.1"
  "score-cam --layer layer4.1"
  "ablation-cam --layer layer4.1"
  "guided-backprop"
  "guided-grad-cam --layer layer4.1"
  "integrated-gradients --steps 32"
  "smooth-grad --samples 16"
  "occlusion"
  "gradient-shap --samples 16 --stdev 0.1"
  "deep-lift"
  "rise"
)
if [[ -n ${ONLY:-} ]]; then
  mapfile -t METHODS < <(printf '%s\n' "${METHODS[@]}" | grep -E "$ONLY")
  ((${#METHODS[@]})) || { say "ONLY=$ONLY matches no method"; exit 1; }
fi
start_release_server "$TRAINED_PORT" "$WORK/trained.log"
evaluate() { "$ROOT/target/release/explain" --endpoint "http://127.0.0.1:$TRAINED_PORT" eval "$WORK/held-out" --json "$@"; }
for method in "${METHODS[@]}"; do
  say "explain eval --method $method"
  # shellcheck disable=SC2086 # a method and its flags
  evaluate --method $method | tee -a "$OUT/methods.jsonl"
done

for from in head layer4.1 layer4.0 layer3.1 layer3.0 layer2.1 layer2.0 layer1.1 layer1.0 conv1; do
  "$ROOT/target/release/explaind" --log-filter warn randomise --from "$from" -o "$WORK/randomised-$from.onnx"
  start_release_server "$COPY_PORT" "$WORK/randomised-$from.log" --model "$WORK/randomised-$from.onnx"
  for method in "${METHODS[@]}"; do
    say "randomised from $from: explain eval --method $method"
    # shellcheck disable=SC2086
    evaluate --method $method --limit "$CASCADE_COUNT" --no-curves --compare-endpoint "http://127.0.0.1:$COPY_PORT" \
      | sed "s/^{/{\"randomised_from\":\"$from\",/" | tee -a "$OUT/cascade.jsonl"
  done
  kill "$server"
  wait "$server" 2>/dev/null || true
done
python3 "$ROOT/tools/fidelity/report.py" "$OUT" | tee "$OUT/report.md"
