//! Compiles `explain/v1/explain.proto` (client, server and a file descriptor set for reflection)
//! and the vendored `onnx.proto` (messages only) into `OUT_DIR`, with a vendored `protoc`.

use std::{env, io, path::PathBuf};

use tonic_prost_build::Config;

fn config() -> io::Result<Config> {
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(io::Error::other)?;
    let mut config = Config::new();
    config.protoc_executable(protoc);
    Ok(config)
}

fn main() -> io::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("OUT_DIR unset"))?);

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("explain_v1_descriptor.bin"))
        .extern_path(".google.rpc", "::tonic_types::pb")
        .bytes(".explain.v1.TensorChunk.data")
        .bytes(".explain.v1.Tensor.data")
        .bytes(".explain.v1.Image.encoded")
        .bytes(".explain.v1.RenderedImage.png")
        .compile_with_config(config()?, &["explain/v1/explain.proto"], &[".", "third_party"])?;

    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .bytes(".onnx.TensorProto.raw_data")
        .compile_with_config(config()?, &["third_party/onnx/onnx.proto"], &["third_party"])?;
    Ok(())
}
