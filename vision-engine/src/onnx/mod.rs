//! Reading ONNX model files (the `ModelProto` protobuf) into plain Rust values.
//!
//! The protobuf wire format is decoded by hand ([`wire`]): no generated code and no protobuf
//! dependency, so the reader stays small in the wasm build and every malformed input becomes an
//! [`OnnxError`] naming the field path, never a panic. Allocations follow the bytes actually
//! present, never a declared length or tensor shape.
//!
//! Scope is what Ultralytics detectors (YOLOv8, YOLO11, YOLO26 exports, fp32 and fp16) need:
//! dense tensors of the common numeric types stored inside the file. Subgraphs (If/Loop/Scan),
//! external or sparse weights and non-tensor value types are reported as unsupported.

mod decode;
mod error;
mod model;
mod names;
mod wire;

pub use crate::f16::f16_to_f32;
pub use error::OnnxError;
pub use model::{
    Attribute, AttributeValue, DataType, Dim, Graph, Model, Node, Tensor, TensorData, TensorType,
    ValueInfo,
};
pub use names::class_names;

/// Decodes the bytes of an `.onnx` file.
pub fn parse_model(bytes: &[u8]) -> Result<Model, OnnxError> {
    decode::model(bytes)
}
