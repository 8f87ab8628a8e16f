//! The SDK's chunk reassembly: any sequence of length-delimited `TensorChunk` messages gives
//! tensors or an error, never a panic or an allocation sized by what a chunk claims.
#![no_main]

use explain_client::{Assembler, proto};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut assembler = Assembler::default();
    while !rest.is_empty() {
        let Ok(chunk) = proto::TensorChunk::decode_length_delimited(&mut rest) else { return };
        if assembler.push(chunk).is_err() {
            return;
        }
    }
    if let Ok(tensors) = assembler.finish() {
        for tensor in tensors.values() {
            assert!(tensor.array.len() <= data.len(), "more values than bytes received");
        }
    }
});
