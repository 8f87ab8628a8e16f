//! The one tensor codec of the wire, both directions, for the service and the SDK alike:
//! little-endian, row-major float32, float16, bfloat16 (round to nearest even) and uint8 (affine,
//! per channel: axis 1, or axis 0 for vectors); and chunking of encoded bytes into bounded pieces
//! that share the encoded buffer instead of copying it.
//!
//! Conversions run over whole slices (`half`'s slice conversions use the CPU's F16C instructions
//! where present), and an encoded tensor is written once, into the buffer its chunks slice.

use bytes::Bytes;
use half::{bf16, f16, slice::HalfFloatSliceExt};

use crate::v1::{DataType, Quantization};

/// A tensor's bytes in some encoding, with the quantisation parameters of uint8.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// The encoded values.
    pub data: Bytes,
    /// For uint8: the axis, scales and zero points (real = (q − zero_point) × scale).
    pub quantization: Option<Quantization>,
}

/// Why bytes could not be decoded into a tensor of a given shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The byte count does not match the shape (`count` is `None` when the element count overflows).
    #[error("{bytes} bytes do not hold {} {} values", count.map_or_else(|| "more than 2^64".to_owned(), |c| c.to_string()), dtype.as_str_name())]
    Size {
        /// Bytes received.
        bytes: usize,
        /// Elements the shape holds.
        count: Option<usize>,
        /// The element type.
        dtype: DataType,
    },
    /// UINT8 data came without its quantisation parameters.
    #[error("UINT8 without quantization parameters")]
    MissingQuantization,
    /// The quantisation axis is not a dimension of the shape.
    #[error("quantization axis {0} is out of range")]
    QuantizationAxis(u32),
    /// The number of scales or zero points is not the size of the quantised axis.
    #[error("quantization has {scales} scales and {zero_points} zero points for {channels} channels")]
    QuantizationChannels {
        /// Scales given.
        scales: usize,
        /// Zero points given.
        zero_points: usize,
        /// The size of the axis.
        channels: usize,
    },
}

/// Bytes per element of `dtype` (`UNSPECIFIED` is float32, the API's default).
pub fn width(dtype: DataType) -> usize {
    match dtype {
        DataType::Float32 | DataType::Unspecified => 4,
        DataType::Float16 | DataType::Bfloat16 => 2,
        DataType::Uint8 => 1,
    }
}

/// Encodes `values`, a row-major tensor of `shape`, as `dtype` (`UNSPECIFIED` is float32).
///
/// # Panics
/// If `values.len()` is not the product of `shape` (a caller's bug, not a request's).
pub fn encode(values: &[f32], shape: &[usize], dtype: DataType) -> Encoded {
    assert_eq!(values.len(), shape.iter().product::<usize>(), "values do not fill shape {shape:?}");
    let plain = |data: Vec<u8>| Encoded { data: data.into(), quantization: None };
    match dtype {
        DataType::Float32 | DataType::Unspecified => plain(write_le(values)),
        DataType::Float16 => plain(write_halves(values, f16::to_le_bytes)),
        DataType::Bfloat16 => plain(write_halves(values, bf16::to_le_bytes)),
        DataType::Uint8 => quantize(values, shape),
    }
}

/// [`encode`] for values the caller gives away: float32 on a little-endian target is sent as the
/// values' own memory, without a copy; every other case encodes as [`encode`] does.
///
/// # Panics
/// As [`encode`].
pub fn encode_owned(values: Vec<f32>, shape: &[usize], dtype: DataType) -> Encoded {
    let float32 = matches!(dtype, DataType::Float32 | DataType::Unspecified);
    if float32 && cfg!(target_endian = "little") {
        assert_eq!(values.len(), shape.iter().product::<usize>(), "values do not fill shape {shape:?}");
        return Encoded { data: Bytes::from_owner(NativeFloats(values)), quantization: None };
    }
    encode(&values, shape, dtype)
}

/// Float32 values viewed as their bytes in native order (little-endian where it is used).
struct NativeFloats(Vec<f32>);

impl AsRef<[u8]> for NativeFloats {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Decodes `bytes`, a row-major tensor of `shape` encoded as `dtype`, to float32. The byte count
/// is checked against the shape (with checked arithmetic) before anything is allocated.
pub fn decode(
    bytes: &[u8],
    shape: &[usize],
    dtype: DataType,
    quantization: Option<&Quantization>,
) -> Result<Vec<f32>, CodecError> {
    let count = shape.iter().try_fold(1_usize, |count, &d| count.checked_mul(d));
    if count.and_then(|count| count.checked_mul(width(dtype))) != Some(bytes.len()) {
        return Err(CodecError::Size { bytes: bytes.len(), count, dtype });
    }
    Ok(match dtype {
        DataType::Float32 | DataType::Unspecified => read_le(bytes),
        DataType::Float16 => read_halves(bytes, f16::from_le_bytes),
        DataType::Bfloat16 => read_halves(bytes, bf16::from_le_bytes),
        DataType::Uint8 => dequantize(bytes, shape, quantization.ok_or(CodecError::MissingQuantization)?)?,
    })
}

/// Splits `data` into consecutive pieces of at most `max_chunk` bytes (one empty piece for empty
/// data), each a slice of `data`, not a copy. Yields each piece with its offset.
pub fn chunks(data: &Bytes, max_chunk: usize) -> impl Iterator<Item = (usize, Bytes)> + '_ {
    let max_chunk = max_chunk.max(1);
    let count = data.len().div_ceil(max_chunk).max(1);
    (0..count).map(move |i| {
        let start = i * max_chunk;
        (start, data.slice(start..(start + max_chunk).min(data.len())))
    })
}

/// Float32 values as little-endian bytes, in one pass (the conversion inlines, so the loop is a
/// copy on little-endian targets).
fn write_le(values: &[f32]) -> Vec<u8> {
    let mut data = vec![0_u8; values.len() * 4];
    for (out, &value) in data.chunks_exact_mut(4).zip(values) {
        out.copy_from_slice(&value.to_le_bytes());
    }
    data
}

/// Float32 values from little-endian bytes (`bytes.len()` a multiple of 4, checked by the caller).
fn read_le(bytes: &[u8]) -> Vec<f32> {
    let mut values = vec![0.0_f32; bytes.len() / 4];
    for (value, raw) in values.iter_mut().zip(bytes.chunks_exact(4)) {
        *value = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    }
    values
}

/// Values per block of the half-precision conversions: the slice conversions (vectorised) run on
/// a block on the stack, so that the output is written once.
const HALF_BLOCK: usize = 1024;

/// Float32 values as half-precision little-endian bytes (float16 or bfloat16, by `to_le`).
fn write_halves<T>(values: &[f32], to_le: impl Fn(T) -> [u8; 2]) -> Vec<u8>
where
    T: Copy + Default,
    [T]: HalfFloatSliceExt,
{
    let mut data = vec![0_u8; values.len() * 2];
    let mut halves = [T::default(); HALF_BLOCK];
    for (out, block) in data.chunks_mut(2 * HALF_BLOCK).zip(values.chunks(HALF_BLOCK)) {
        let halves = &mut halves[..block.len()];
        halves.convert_from_f32_slice(block);
        for (bytes, &half) in out.chunks_exact_mut(2).zip(halves.iter()) {
            bytes.copy_from_slice(&to_le(half));
        }
    }
    data
}

/// Float32 values from half-precision little-endian bytes (`bytes.len()` even, checked by the caller).
fn read_halves<T>(bytes: &[u8], from_le: impl Fn([u8; 2]) -> T) -> Vec<f32>
where
    T: Copy + Default,
    [T]: HalfFloatSliceExt,
{
    let mut values = vec![0.0_f32; bytes.len() / 2];
    let mut halves = [T::default(); HALF_BLOCK];
    for (out, block) in values.chunks_mut(HALF_BLOCK).zip(bytes.chunks(2 * HALF_BLOCK)) {
        let halves = &mut halves[..out.len()];
        for (half, raw) in halves.iter_mut().zip(block.chunks_exact(2)) {
            *half = from_le([raw[0], raw[1]]);
        }
        halves.convert_to_f32_slice(out);
    }
    values
}

/// The quantised axis of a tensor of `shape` and the sizes before, along and after it.
fn channel_layout(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis.min(shape.len())].iter().product();
    let channels = shape.get(axis).copied().unwrap_or(1);
    let inner = shape.get(axis + 1..).map_or(1, |rest| rest.iter().product());
    (outer, channels, inner)
}

/// uint8 per channel: each channel's [min, max] maps onto [0, 255].
fn quantize(values: &[f32], shape: &[usize]) -> Encoded {
    let axis = usize::from(shape.len() > 1);
    let (outer, channels, inner) = channel_layout(shape, axis);
    // Block `(o, c)` of the tensor is values[(o * channels + c) * inner ..][.. inner].
    let block = |o: usize, c: usize| &values[(o * channels + c) * inner..][..inner];
    let mut scales = Vec::with_capacity(channels);
    let mut zero_points = Vec::with_capacity(channels);
    for c in 0..channels {
        let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
        for o in 0..outer {
            for &v in block(o, c) {
                min = min.min(v);
                max = max.max(v);
            }
        }
        let scale = if max > min { (max - min) / 255.0 } else { 1.0 };
        scales.push(scale);
        zero_points.push(-min / scale);
    }
    let mut data = vec![0_u8; values.len()];
    for (index, out) in data.chunks_mut(inner.max(1)).enumerate() {
        let (o, c) = (index / channels.max(1), index % channels.max(1));
        let (scale, zero_point) = (scales[c], zero_points[c]);
        for (q, &v) in out.iter_mut().zip(block(o, c)) {
            *q = (v / scale + zero_point).round().clamp(0.0, 255.0) as u8;
        }
    }
    let axis = axis as u32;
    Encoded { data: data.into(), quantization: Some(Quantization { axis, scales, zero_points }) }
}

fn dequantize(bytes: &[u8], shape: &[usize], quantization: &Quantization) -> Result<Vec<f32>, CodecError> {
    let axis = usize::try_from(quantization.axis).unwrap_or(usize::MAX);
    if axis >= shape.len() {
        return Err(CodecError::QuantizationAxis(quantization.axis));
    }
    let (_, channels, inner) = channel_layout(shape, axis);
    let (scales, zero_points) = (&quantization.scales, &quantization.zero_points);
    if scales.len() != channels || zero_points.len() != channels {
        return Err(CodecError::QuantizationChannels {
            scales: scales.len(),
            zero_points: zero_points.len(),
            channels,
        });
    }
    let mut values = vec![0.0; bytes.len()];
    for (index, (out, block)) in values.chunks_mut(inner.max(1)).zip(bytes.chunks(inner.max(1))).enumerate() {
        let c = index % channels;
        for (v, &q) in out.iter_mut().zip(block) {
            *v = (f32::from(q) - zero_points[c]) * scales[c];
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: [usize; 3] = [1, 2, 3];

    fn sample() -> Vec<f32> {
        (0..6).map(|i| ((i / 3) * 10 + i % 3) as f32 * 0.5 - 1.0).collect()
    }

    #[test]
    fn float_encodings_are_little_endian_and_round_trip() {
        let values = sample();
        let f32s = encode(&values, &SHAPE, DataType::Float32).data;
        assert_eq!(f32s.len(), 24);
        assert_eq!(f32::from_le_bytes([f32s[4], f32s[5], f32s[6], f32s[7]]), values[1]);
        let f16s = encode(&values, &SHAPE, DataType::Float16).data;
        assert_eq!(f16::from_le_bytes([f16s[10], f16s[11]]).to_f32(), values[5]);
        let bf16s = encode(&values, &SHAPE, DataType::Bfloat16).data;
        assert_eq!(bf16::from_le_bytes([bf16s[2], bf16s[3]]).to_f32(), values[1]);
        for dtype in [DataType::Float32, DataType::Float16, DataType::Bfloat16, DataType::Unspecified] {
            let encoded = encode(&values, &SHAPE, dtype);
            assert_eq!(decode(&encoded.data, &SHAPE, dtype, None), Ok(values.clone()), "{dtype:?}");
        }
    }

    #[test]
    fn half_precision_crosses_conversion_blocks_in_order() {
        // Longer than two blocks and not a multiple of one; every value is exact in both formats.
        let values: Vec<f32> = (0..2 * HALF_BLOCK + 7).map(|i| (i % 201) as f32 - 100.0).collect();
        let shape = [values.len()];
        for dtype in [DataType::Float16, DataType::Bfloat16] {
            let encoded = encode(&values, &shape, dtype);
            assert_eq!(encoded.data.len(), 2 * values.len());
            assert_eq!(decode(&encoded.data, &shape, dtype, None), Ok(values.clone()), "{dtype:?}");
        }
    }

    #[test]
    fn owned_encoding_sends_the_same_bytes() {
        for dtype in [DataType::Float32, DataType::Unspecified, DataType::Float16, DataType::Bfloat16, DataType::Uint8]
        {
            assert_eq!(encode_owned(sample(), &SHAPE, dtype), encode(&sample(), &SHAPE, dtype), "{dtype:?}");
        }
    }

    #[test]
    fn bfloat16_rounds_to_nearest_even() {
        // 1 + 2^-8 lies halfway between two bfloat16 values: it rounds to the even one, 1.0.
        let encoded = encode(&[1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8)], &[2], DataType::Bfloat16);
        assert_eq!(decode(&encoded.data, &[2], DataType::Bfloat16, None), Ok(vec![1.0, 1.0 + 4.0 * 2f32.powi(-8)]));
    }

    #[test]
    fn uint8_is_per_channel_and_within_half_a_step() {
        let values = sample();
        let encoded = encode(&values, &SHAPE, DataType::Uint8);
        let q = encoded.quantization.clone().expect("uint8 has quantisation");
        assert_eq!((q.axis, q.scales.len()), (1, 2));
        let decoded = decode(&encoded.data, &SHAPE, DataType::Uint8, Some(&q)).expect("decodes");
        for (flat, (&back, &real)) in decoded.iter().zip(&values).enumerate() {
            assert!((back - real).abs() <= q.scales[flat / 3] / 2.0 + 1e-6, "{back} vs {real}");
        }
        assert_eq!((encoded.data[0], encoded.data[2]), (0, 255));
    }

    #[test]
    fn uint8_channels_repeat_across_the_batch() {
        // Two images of two channels: channel 1 of both images shares one scale.
        let values = [0.0, 1.0, 0.0, 51.0, 1.0, 0.0, 255.0, 0.0];
        let encoded = encode(&values, &[2, 2, 2], DataType::Uint8);
        let q = encoded.quantization.expect("quantised");
        assert_eq!(q.scales, [1.0 / 255.0, 1.0]);
        assert_eq!(&encoded.data[..], [0, 255, 0, 51, 255, 0, 255, 0]);
        assert_eq!(
            dequantize(
                &[4, 11],
                &[1, 2],
                &Quantization { axis: 1, scales: vec![0.5, 2.0], zero_points: vec![0.0, 10.0] }
            ),
            Ok(vec![2.0, 2.0])
        );
    }

    #[test]
    fn sizes_that_do_not_match_are_errors_before_allocation() {
        assert_eq!(
            decode(&[0; 8], &[1 << 40, 1 << 40], DataType::Float32, None).map_err(|e| e.to_string()),
            Err("8 bytes do not hold more than 2^64 DATA_TYPE_FLOAT32 values".to_owned())
        );
        assert!(matches!(decode(&[0; 6], &[2], DataType::Float32, None), Err(CodecError::Size { count: Some(2), .. })));
        assert_eq!(decode(&[0; 2], &[2], DataType::Uint8, None), Err(CodecError::MissingQuantization));
        let q = Quantization { axis: 3, scales: vec![1.0], zero_points: vec![0.0] };
        assert_eq!(decode(&[0; 2], &[1, 2], DataType::Uint8, Some(&q)), Err(CodecError::QuantizationAxis(3)));
        let q = Quantization { axis: 1, ..q };
        assert!(matches!(
            decode(&[0; 2], &[1, 2], DataType::Uint8, Some(&q)),
            Err(CodecError::QuantizationChannels { channels: 2, .. })
        ));
    }

    #[test]
    fn chunks_slice_the_data_without_overlap_or_copies() {
        let data = Bytes::from((0..=255).collect::<Vec<u8>>());
        let pieces: Vec<_> = chunks(&data, 100).collect();
        assert_eq!(pieces.iter().map(|(o, b)| (*o, b.len())).collect::<Vec<_>>(), [(0, 100), (100, 100), (200, 56)]);
        assert_eq!(pieces[1].1.as_ptr(), data[100..].as_ptr(), "a chunk is a view of the encoded buffer");
        assert_eq!(chunks(&Bytes::new(), 100).count(), 1);
    }
}
