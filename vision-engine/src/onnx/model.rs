//! What an ONNX file says, as plain Rust values: no protobuf types, every tensor decoded.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub ir_version: i64,
    /// Operator set version per domain. The default domain is the key `""` (a file's
    /// `"ai.onnx"` is folded into it: the spec makes them the same domain).
    pub opsets: BTreeMap<String, i64>,
    pub producer_name: String,
    pub producer_version: String,
    pub graph: Graph,
    /// `metadata_props` in file order; Ultralytics stores `names`, `stride`, `imgsz`... here.
    pub metadata: Vec<(String, String)>,
}

impl Model {
    /// The first metadata value stored under `key`.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub name: String,
    /// In file order, which ONNX requires to be topological.
    pub nodes: Vec<Node>,
    pub initializers: Vec<Tensor>,
    /// Below IR version 4, initializers are listed here too.
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    /// Optional shape information for intermediate values.
    pub value_info: Vec<ValueInfo>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    /// `""` for the default ONNX domain.
    pub domain: String,
    /// Value names; `""` marks an omitted optional input or output.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<Attribute>,
}

impl Node {
    pub fn attribute(&self, name: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| &a.value)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: AttributeValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Float(f32),
    Int(i64),
    /// ONNX strings are bytes; in practice UTF-8 (`mode = "nearest"`).
    String(Vec<u8>),
    Tensor(Tensor),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    /// Never negative; `[]` is a scalar.
    pub dims: Vec<i64>,
    pub data: TensorData,
}

/// A tensor's elements in row-major order, in the element type of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    /// IEEE binary16 bit patterns; widen with [`f16_to_f32`](super::f16_to_f32).
    F16(Vec<u16>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    Bool(Vec<bool>),
}

impl TensorData {
    pub fn data_type(&self) -> DataType {
        match self {
            TensorData::F32(_) => DataType::Float,
            TensorData::F16(_) => DataType::Float16,
            TensorData::F64(_) => DataType::Double,
            TensorData::I64(_) => DataType::Int64,
            TensorData::I32(_) => DataType::Int32,
            TensorData::U8(_) => DataType::Uint8,
            TensorData::I8(_) => DataType::Int8,
            TensorData::Bool(_) => DataType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `TensorProto.DataType`. Types the reader cannot hold in [`TensorData`] still have a name so
/// that value types and errors can state them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Float,
    Uint8,
    Int8,
    Uint16,
    Int16,
    Int32,
    Int64,
    String,
    Bool,
    Float16,
    Double,
    Uint32,
    Uint64,
    Complex64,
    Complex128,
    BFloat16,
    /// Any other code, `0` (UNDEFINED) and the 8-, 6-, 4- and 2-bit types included.
    Other(i32),
}

impl DataType {
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => DataType::Float,
            2 => DataType::Uint8,
            3 => DataType::Int8,
            4 => DataType::Uint16,
            5 => DataType::Int16,
            6 => DataType::Int32,
            7 => DataType::Int64,
            8 => DataType::String,
            9 => DataType::Bool,
            10 => DataType::Float16,
            11 => DataType::Double,
            12 => DataType::Uint32,
            13 => DataType::Uint64,
            14 => DataType::Complex64,
            15 => DataType::Complex128,
            16 => DataType::BFloat16,
            other => DataType::Other(other),
        }
    }
}

/// ONNX's own names (`onnx.TensorProto.DataType.Name`), so messages match the ONNX tools'.
impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataType::Float => "FLOAT",
            DataType::Uint8 => "UINT8",
            DataType::Int8 => "INT8",
            DataType::Uint16 => "UINT16",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::String => "STRING",
            DataType::Bool => "BOOL",
            DataType::Float16 => "FLOAT16",
            DataType::Double => "DOUBLE",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Complex64 => "COMPLEX64",
            DataType::Complex128 => "COMPLEX128",
            DataType::BFloat16 => "BFLOAT16",
            DataType::Other(0) => "UNDEFINED",
            DataType::Other(code) => return write!(f, "data type {code}"),
        })
    }
}

/// A graph input, output or intermediate value with what the file says about its type.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    /// `None` where the file leaves the type out.
    pub tensor_type: Option<TensorType>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorType {
    pub elem_type: DataType,
    /// `None`: rank unknown. `Some(vec![])`: a scalar.
    pub shape: Option<Vec<Dim>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    /// A named size such as `"batch"`, the same wherever the name appears.
    Symbolic(String),
    Unknown,
}
