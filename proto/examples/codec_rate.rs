//! Milliseconds per encode and per decode of one feature-map-sized tensor (8.6 MB of float32; the
//! 11 feature maps of a ResNet-18 image are 7.0 MB) in each floating-point encoding of the wire,
//! for comparing builds of the codec. Not a test.
//!     cargo run --release -p explain-proto --example codec_rate

use std::time::Instant;

use explain_proto::{codec, v1::DataType};

/// Runs per measurement.
const RUNS: u32 = 20;

fn main() {
    let count = 8_600_000 / 4;
    let values: Vec<f32> = (0..count).map(|i| (i as f32 * 0.001).sin()).collect();
    let shape = [count];
    for dtype in [DataType::Float32, DataType::Float16, DataType::Bfloat16] {
        let started = Instant::now();
        let mut encoded = codec::encode(&values, &shape, dtype);
        for _ in 1..RUNS {
            encoded = codec::encode(&values, &shape, dtype);
        }
        let encode_ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(RUNS);
        let started = Instant::now();
        let mut checksum = 0.0;
        for _ in 0..RUNS {
            checksum += codec::decode(&encoded.data, &shape, dtype, None).expect("decodes")[count / 2];
        }
        let decode_ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(RUNS);
        println!("{dtype:?}: encode {encode_ms:.2} ms, decode {decode_ms:.2} ms (checksum {checksum:.3})");
    }
}
