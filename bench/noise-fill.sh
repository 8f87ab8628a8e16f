#!/usr/bin/env bash
# How long SmoothGrad's noise takes to draw for ROWS rows of a 3 × 224 × 224 image: the service's
# own generator (service/src/explain/noise.rs), compiled stand-alone in release mode, filling rows
# as SmoothGrad::fill does; three runs. Never part of the test suite.
#   bench/noise-fill.sh            (ROWS from the environment, default 16)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROWS=${ROWS:-16}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The module without its tests, its items made public for the stand-alone crate.
sed -e '/^#\[cfg(test)\]/,$d' -e 's/pub(super) /pub /' -e 's|^//!|//|' "$ROOT/service/src/explain/noise.rs" > "$work/noise.rs"
cat > "$work/main.rs" <<RUST
mod noise;
fn main() {
    let image = vec![0.5_f32; 3 * 224 * 224];
    let mut rows = vec![0_f32; $ROWS * image.len()];
    let mut buffer = vec![0_f32; image.len()];
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let mut noise = noise::Noise::new(7);
        for row in rows.chunks_mut(image.len()) {
            noise.fill_normal(&mut buffer);
            for ((value, &x), &z) in row.iter_mut().zip(&image).zip(&buffer) {
                *value = x + 0.3 * z;
            }
        }
        let checksum: f64 = rows.iter().map(|&v| f64::from(v)).sum();
        println!("$ROWS rows of noise: {:.1} ms (checksum {checksum:.3})", started.elapsed().as_secs_f64() * 1e3);
    }
}
RUST
rustc --edition 2024 -O -A dead_code "$work/main.rs" -o "$work/noise-fill"
"$work/noise-fill"
