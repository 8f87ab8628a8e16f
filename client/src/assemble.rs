//! Reassembly of streamed tensors: chunks may arrive in any order; a tensor is complete when its
//! chunks cover `[0, total_bytes)` exactly. Gaps, overlaps, inconsistent metadata and sizes that do
//! not match the shape are errors, never silent truncation. A tensor is decoded to f32 as soon as
//! its bytes are all in, while the rest of the stream is still arriving.

use std::collections::BTreeMap;

use explain_proto::{
    codec,
    v1::{self as pb, DataType},
};
use ndarray::{ArrayD, IxDyn};

use crate::Error;

/// A tensor received from the service, decoded to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedTensor {
    /// Its name, e.g. `activation/layer2.1`.
    pub name: String,
    /// The values, batch dimension first.
    pub array: ArrayD<f32>,
    /// The element type it travelled in.
    pub dtype: DataType,
    /// For layer tensors with selected channels: the original index of each channel.
    pub channel_indices: Vec<u32>,
}

/// Chunks of one tensor, keyed by offset, and how many bytes they hold.
#[derive(Debug)]
struct Partial {
    first: pb::TensorChunk,
    pieces: BTreeMap<u64, bytes::Bytes>,
    received: u64,
}

/// Collects the chunks of every tensor of one response stream.
#[derive(Debug, Default)]
pub struct Assembler {
    partials: BTreeMap<String, Partial>,
    complete: BTreeMap<String, ReceivedTensor>,
}

impl Assembler {
    /// Adds a chunk, and decodes its tensor if that completes it. Fails on a chunk whose metadata
    /// disagrees with earlier chunks of its tensor, that repeats an offset, or that comes after its
    /// tensor was complete; and on a complete tensor that does not decode.
    pub fn push(&mut self, mut chunk: pb::TensorChunk) -> Result<(), Error> {
        if self.complete.contains_key(&chunk.name) {
            return Err(Error::Assembly(format!("`{}`: a chunk after the tensor was complete", chunk.name)));
        }
        let data = std::mem::take(&mut chunk.data);
        let (offset, length) = (chunk.offset, data.len() as u64);
        let name = chunk.name.clone();
        let (received, total) = match self.partials.get_mut(&name) {
            None => {
                let pieces = BTreeMap::from([(offset, data)]);
                let total = chunk.total_bytes;
                self.partials.insert(name.clone(), Partial { first: chunk, pieces, received: length });
                (length, total)
            }
            Some(partial) => {
                let same = partial.first.shape == chunk.shape
                    && partial.first.dtype == chunk.dtype
                    && partial.first.total_bytes == chunk.total_bytes
                    && partial.first.channel_indices == chunk.channel_indices;
                if !same {
                    return Err(Error::Assembly(format!("chunks of `{name}` disagree on the tensor's metadata")));
                }
                if partial.pieces.insert(offset, data).is_some() {
                    return Err(Error::Assembly(format!("`{name}`: two chunks at offset {offset}")));
                }
                partial.received = partial.received.saturating_add(length);
                (partial.received, partial.first.total_bytes)
            }
        };
        if received >= total
            && let Some(partial) = self.partials.remove(&name)
        {
            self.complete.insert(name, decode(partial)?);
        }
        Ok(())
    }

    /// Every tensor, decoded; fails if any is incomplete or malformed.
    pub fn finish(mut self) -> Result<BTreeMap<String, ReceivedTensor>, Error> {
        for (name, partial) in std::mem::take(&mut self.partials) {
            self.complete.insert(name, decode(partial)?);
        }
        Ok(self.complete)
    }
}

fn decode(partial: Partial) -> Result<ReceivedTensor, Error> {
    let Partial { first, pieces, received } = partial;
    let name = first.name;
    let total = first.total_bytes;
    // One piece (the usual case) is decoded where it lies; several are joined first.
    let bytes = if pieces.len() == 1 && pieces.contains_key(&0) {
        pieces.into_values().next().unwrap_or_default()
    } else {
        join(&name, pieces, received.min(total))?
    };
    if bytes.len() as u64 != total {
        return Err(Error::Assembly(format!("`{name}`: received {} of {total} bytes", bytes.len())));
    }
    let shape: Vec<usize> = first
        .shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| Error::Assembly(format!("`{name}`: negative dimension {d}"))))
        .collect::<Result<_, _>>()?;
    let dtype = DataType::try_from(first.dtype).unwrap_or(DataType::Unspecified);
    let values = codec::decode(&bytes, &shape, dtype, first.quantization.as_ref())
        .map_err(|reason| Error::Assembly(format!("`{name}`: {reason}")))?;
    let array = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| Error::Assembly(format!("`{name}`: {e}")))?;
    Ok(ReceivedTensor { name, array, dtype, channel_indices: first.channel_indices })
}

/// The pieces of a tensor, by offset, joined into one buffer of `capacity` bytes reserved: an error
/// names the first gap or overlap. What arrived, not what the chunks claim, bounds the capacity.
fn join(name: &str, pieces: BTreeMap<u64, bytes::Bytes>, capacity: u64) -> Result<bytes::Bytes, Error> {
    let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    for (offset, piece) in pieces {
        if offset != bytes.len() as u64 {
            let kind = if offset > bytes.len() as u64 { "missing" } else { "overlapping" };
            return Err(Error::Assembly(format!("`{name}`: {kind} bytes at offset {}", bytes.len())));
        }
        bytes.extend_from_slice(&piece);
    }
    Ok(bytes.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64, data: &[u8], total: u64) -> pb::TensorChunk {
        pb::TensorChunk {
            name: "t".into(),
            shape: vec![1, 2],
            dtype: DataType::Float32 as i32,
            offset,
            total_bytes: total,
            data: bytes::Bytes::copy_from_slice(data),
            ..Default::default()
        }
    }

    fn floats() -> Vec<u8> {
        [1.5_f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn out_of_order_chunks_reassemble() {
        let bytes = floats();
        let mut assembler = Assembler::default();
        assembler.push(chunk(5, &bytes[5..], 8)).expect("push");
        assembler.push(chunk(0, &bytes[..5], 8)).expect("push");
        let tensors = assembler.finish().expect("complete");
        assert_eq!(tensors["t"].array.as_slice(), Some(&[1.5, -2.0][..]));
    }

    #[test]
    fn a_missing_chunk_is_an_error_not_a_truncation() {
        let bytes = floats();
        let mut assembler = Assembler::default();
        assembler.push(chunk(4, &bytes[4..], 8)).expect("push");
        let error = assembler.finish().expect_err("incomplete");
        assert!(error.to_string().contains("missing bytes at offset 0"), "{error}");
        let mut assembler = Assembler::default();
        assembler.push(chunk(0, &bytes[..4], 8)).expect("push");
        assert!(assembler.finish().expect_err("short").to_string().contains("received 4 of 8 bytes"));
    }

    #[test]
    fn duplicate_offsets_and_disagreeing_metadata_are_errors() {
        let bytes = floats();
        let mut assembler = Assembler::default();
        assembler.push(chunk(0, &bytes[..4], 8)).expect("push");
        assert!(assembler.push(chunk(0, &bytes[..4], 8)).is_err());
        assert!(assembler.push(chunk(4, &bytes[4..], 12)).is_err());
    }

    #[test]
    fn a_tensor_is_decoded_once_complete_and_takes_no_more_chunks() {
        let bytes = floats();
        let mut assembler = Assembler::default();
        assembler.push(chunk(0, &bytes[..4], 8)).expect("push");
        assert!(assembler.complete.is_empty(), "half a tensor is not decoded");
        assembler.push(chunk(4, &bytes[4..], 8)).expect("push");
        assert_eq!(assembler.complete["t"].array.as_slice(), Some(&[1.5, -2.0][..]), "decoded on arrival");
        let error = assembler.push(chunk(8, &bytes[..4], 8)).expect_err("late chunk").to_string();
        assert!(error.contains("after the tensor was complete"), "{error}");
    }

    #[test]
    fn hostile_sizes_are_errors_not_aborts() {
        // A claimed total of 2^62 bytes must not be allocated up front.
        let mut assembler = Assembler::default();
        assembler.push(chunk(0, &floats(), 1 << 62)).expect("push");
        assert!(assembler.finish().expect_err("short").to_string().contains("received 8 of"));
        // A shape whose element count overflows.
        let mut assembler = Assembler::default();
        let overflowing = pb::TensorChunk { shape: vec![1 << 40, 1 << 40], ..chunk(0, &floats(), 8) };
        let error = assembler.push(overflowing).expect_err("overflow").to_string();
        assert!(error.contains("more than 2^64"), "{error}");
    }
}
