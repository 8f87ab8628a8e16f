#!/usr/bin/env bash
# Builds the explaind images from deploy/docker/Dockerfile with whichever container engine is
# present (docker, podman or buildah, in that order; EXPLAIN_CONTAINER_ENGINE picks one).
#   deploy/docker/build.sh [cpu|cuda|all]     (default: all)
# Tags: ${EXPLAIN_IMAGE:-explaind}:${VERSION}-cpu and :${VERSION}-cuda, VERSION from Cargo.toml.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
flavour=${1:-all}
image=${EXPLAIN_IMAGE:-explaind}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
revision=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)

engine=${EXPLAIN_CONTAINER_ENGINE:-}
if [[ -z $engine ]]; then
  for candidate in docker podman buildah; do
    if command -v "$candidate" >/dev/null; then engine=$candidate; break; fi
  done
fi
[[ -n $engine ]] || { echo "build.sh: no container engine found (docker, podman or buildah)" >&2; exit 1; }
case $engine in
  docker | podman) build=("$engine" build) ;;
  buildah) build=(buildah bud) ;;
  *) echo "build.sh: unknown container engine $engine" >&2; exit 1 ;;
esac

build_flavour() {
  local args
  case $1 in
    cpu) args=(--build-arg ORT_PACKAGE=onnxruntime --build-arg RUNTIME_IMAGE=debian:12-slim
               --build-arg EXECUTION_PROVIDER=cpu) ;;
    cuda) args=(--build-arg ORT_PACKAGE=onnxruntime-gpu
                --build-arg RUNTIME_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
                --build-arg EXECUTION_PROVIDER=cuda) ;;
    *) echo "build.sh: unknown flavour $1 (cpu, cuda or all)" >&2; exit 1 ;;
  esac
  echo "==> $engine: $image:$version-$1" >&2
  "${build[@]}" -f "$ROOT/deploy/docker/Dockerfile" "${args[@]}" --build-arg VERSION="$version" \
    --build-arg REVISION="$revision" -t "$image:$version-$1" "$ROOT"
}

case $flavour in
  all) build_flavour cpu; build_flavour cuda ;;
  *) build_flavour "$flavour" ;;
esac
