//! Generated Rust types of the `explain.v1` gRPC API (messages, client and server) and of the
//! vendored ONNX schema, which the service uses to read, edit and write models; and the wire's
//! tensor [`codec`], which the service and the SDK share.

pub mod codec;

/// `explain.v1`: the service's API (see `proto/explain/v1/explain.proto`).
#[allow(missing_docs, unreachable_pub, clippy::wildcard_enum_match_arm, clippy::large_enum_variant)]
pub mod v1 {
    tonic::include_proto!("explain.v1");
}

/// The ONNX schema (`onnx.proto` of the `onnx` PyPI package, see `proto/third_party/README.md`).
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::wildcard_enum_match_arm,
    clippy::doc_lazy_continuation,
    clippy::doc_overindented_list_items
)]
pub mod onnx {
    tonic::include_proto!("onnx");
}

/// The encoded `FileDescriptorSet` of `explain.v1` and its imports, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("explain_v1_descriptor");

/// The fully qualified name of the service, as health checks and reflection know it.
pub const SERVICE_NAME: &str = "explain.v1.ExplainService";
