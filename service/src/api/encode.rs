//! Tensor encodings on the wire: float32, float16, bfloat16 (round to nearest even) and uint8
//! (affine per channel), all little-endian, row-major; and chunking into pieces of bounded size.

use bytes::Bytes;
use half::{bf16, f16};
use ndarray::{ArrayD, Axis};

use crate::explain::Encoding;

/// A tensor's bytes in some encoding, and the quantisation parameters for uint8.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Encoded {
    /// The bytes.
    pub(super) data: Bytes,
    /// For uint8: the axis, scales and zero points.
    pub(super) quantization: Option<Quantization>,
}

/// Affine quantisation: real = (q − zero_point) × scale, per index along `axis`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Quantization {
    /// The axis parameters vary along.
    pub(super) axis: usize,
    /// Scales.
    pub(super) scales: Vec<f32>,
    /// Zero points.
    pub(super) zero_points: Vec<f32>,
}

/// Encodes `tensor` (standard layout expected; other layouts are copied first).
pub(super) fn encode(tensor: &ArrayD<f32>, encoding: Encoding) -> Encoded {
    let values = tensor.as_standard_layout();
    let values = values.as_slice().unwrap_or_default();
    match encoding {
        Encoding::Float32 => plain(values.iter().flat_map(|v| v.to_le_bytes())),
        Encoding::Float16 => plain(values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes())),
        Encoding::BFloat16 => plain(values.iter().flat_map(|v| bf16::from_f32(*v).to_le_bytes())),
        Encoding::Uint8 => quantize(tensor),
    }
}

fn plain(bytes: impl Iterator<Item = u8>) -> Encoded {
    Encoded { data: bytes.collect::<Vec<u8>>().into(), quantization: None }
}

/// uint8 per channel (axis 1; axis 0 for vectors): each channel's [min, max] maps onto [0, 255].
fn quantize(tensor: &ArrayD<f32>) -> Encoded {
    let axis = usize::from(tensor.ndim() > 1);
    let channels = tensor.len_of(Axis(axis));
    let mut scales = Vec::with_capacity(channels);
    let mut zero_points = Vec::with_capacity(channels);
    for channel in tensor.axis_iter(Axis(axis)) {
        let min = channel.iter().copied().fold(f32::INFINITY, f32::min);
        let max = channel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let scale = if max > min { (max - min) / 255.0 } else { 1.0 };
        scales.push(scale);
        zero_points.push(-min / scale);
    }
    let index_of_channel = |flat: usize| {
        let inner: usize = tensor.shape()[axis + 1..].iter().product();
        (flat / inner) % channels
    };
    let values = tensor.as_standard_layout();
    let data: Vec<u8> = values
        .iter()
        .enumerate()
        .map(|(flat, &v)| {
            let c = index_of_channel(flat);
            (v / scales[c] + zero_points[c]).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    Encoded { data: data.into(), quantization: Some(Quantization { axis, scales, zero_points }) }
}

/// Splits `data` into consecutive pieces of at most `max_chunk` bytes (one empty piece for empty
/// data), without copying. Yields each piece with its offset.
pub(super) fn chunks(data: &Bytes, max_chunk: usize) -> impl Iterator<Item = (usize, Bytes)> + '_ {
    let max_chunk = max_chunk.max(1);
    let count = data.len().div_ceil(max_chunk).max(1);
    (0..count).map(move |i| {
        let start = i * max_chunk;
        (start, data.slice(start..(start + max_chunk).min(data.len())))
    })
}

#[cfg(test)]
mod tests {
    use ndarray::{Array, IxDyn};

    use super::*;

    fn sample() -> ArrayD<f32> {
        Array::from_shape_fn(IxDyn(&[1, 2, 3]), |i| (i[1] * 10 + i[2]) as f32 * 0.5 - 1.0)
    }

    #[test]
    fn float_encodings_round_trip() {
        let tensor = sample();
        let f32s = encode(&tensor, Encoding::Float32).data;
        assert_eq!(f32s.len(), 24);
        assert_eq!(f32::from_le_bytes([f32s[4], f32s[5], f32s[6], f32s[7]]), tensor[[0, 0, 1]]);
        let f16s = encode(&tensor, Encoding::Float16).data;
        assert_eq!(f16::from_le_bytes([f16s[10], f16s[11]]).to_f32(), tensor[[0, 1, 2]]);
        let bf16s = encode(&tensor, Encoding::BFloat16).data;
        assert_eq!(bf16::from_le_bytes([bf16s[2], bf16s[3]]).to_f32(), tensor[[0, 0, 1]]);
    }

    #[test]
    fn uint8_is_per_channel_and_within_half_a_step() {
        let tensor = sample();
        let encoded = encode(&tensor, Encoding::Uint8);
        let q = encoded.quantization.expect("uint8 has quantisation");
        assert_eq!((q.axis, q.scales.len()), (1, 2));
        for (flat, (&byte, &real)) in encoded.data.iter().zip(tensor.iter()).enumerate() {
            let c = flat / 3;
            let decoded = (f32::from(byte) - q.zero_points[c]) * q.scales[c];
            assert!((decoded - real).abs() <= q.scales[c] / 2.0 + 1e-6, "{decoded} vs {real}");
        }
        assert_eq!(encoded.data[0], 0);
        assert_eq!(encoded.data[2], 255);
    }

    #[test]
    fn chunks_cover_the_data_without_overlap() {
        let data = Bytes::from((0..=255).collect::<Vec<u8>>());
        let pieces: Vec<_> = chunks(&data, 100).collect();
        assert_eq!(pieces.iter().map(|(o, b)| (*o, b.len())).collect::<Vec<_>>(), [(0, 100), (100, 100), (200, 56)]);
        assert_eq!(chunks(&Bytes::new(), 100).count(), 1);
    }
}
