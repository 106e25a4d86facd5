//! ONNX messages from wire fields. Field numbers are those of `onnx/onnx.proto` (checked against
//! the `onnx` package's own descriptors by `tests/fixtures/make_onnx_fixtures.py`). Fields that
//! do not change what the model computes (doc strings, quantization annotations, training
//! info...) are skipped like unknown ones.

use super::OnnxError;
use super::model::{
    Attribute, AttributeValue, DataType, Dim, Graph, Model, Node, Tensor, TensorData, TensorType,
    ValueInfo,
};
use super::wire::{self, FieldError, Fields, Value};
use std::collections::BTreeMap;
use std::fmt;

type Result<T> = std::result::Result<T, OnnxError>;

/// A wire error inside a message, placed under the field it broke (`segment` names it by
/// number) or under the message itself when even the tag was unreadable.
fn wire_error(e: FieldError, segment: impl FnOnce(u32) -> String) -> OnnxError {
    let error = OnnxError::invalid(e.error.to_string());
    match e.number {
        Some(number) => error.within(&segment(number)),
        None => error,
    }
}

fn named(number: u32, names: &[(u32, &str)]) -> String {
    names
        .iter()
        .find(|(n, _)| *n == number)
        .map_or_else(|| format!("field {number}"), |(_, name)| (*name).to_owned())
}

// Field labels are `impl Display` so that `format_args!` labels cost nothing unless there is an
// error: these run for every name and value in the file.

fn mismatch(value: Value<'_>, expected: &str, field: impl fmt::Display) -> OnnxError {
    OnnxError::invalid(wire::wire_type_mismatch(value, expected)).within(&field.to_string())
}

fn bytes<'a>(value: Value<'a>, field: impl fmt::Display) -> Result<&'a [u8]> {
    match value {
        Value::Bytes(b) => Ok(b),
        other => Err(mismatch(other, "length-delimited", field)),
    }
}

fn string(value: Value<'_>, field: impl fmt::Display + Copy) -> Result<String> {
    String::from_utf8(bytes(value, field)?.to_vec())
        .map_err(|_| OnnxError::invalid("not valid UTF-8").within(&field.to_string()))
}

fn varint(value: Value<'_>, field: &str) -> Result<u64> {
    match value {
        Value::Varint(v) => Ok(v),
        other => Err(mismatch(other, "varint", field)),
    }
}

/// `int64` fields: two's complement in all 64 bits.
fn int64(value: Value<'_>, field: &str) -> Result<i64> {
    varint(value, field).map(|v| v as i64)
}

/// `int32` and enum fields: negative values are sign-extended to 64 bits on the wire, so the low
/// 32 bits are the value.
fn int32(value: Value<'_>, field: &str) -> Result<i32> {
    varint(value, field).map(|v| v as i32)
}

/// The first string in field `number` of a message, found even if the message is broken later
/// on: it labels the message in error paths.
fn peek_string(buf: &[u8], number: u32) -> Option<String> {
    Fields::new(buf)
        .map_while(|field| field.ok())
        .find_map(|(n, value)| match value {
            Value::Bytes(b) if n == number => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
}

/// `kind[index] "name"`, or `kind[index]` where the element has no readable name.
fn element(kind: &str, index: usize, buf: &[u8], name_field: u32) -> String {
    match peek_string(buf, name_field).filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}[{index}] {name:?}"),
        None => format!("{kind}[{index}]"),
    }
}

const MODEL_FIELDS: &[(u32, &str)] = &[
    (1, "ir_version"),
    (2, "producer_name"),
    (3, "producer_version"),
    (4, "domain"),
    (5, "model_version"),
    (6, "doc_string"),
    (7, "graph"),
    (20, "training_info"),
    (25, "functions"),
    (26, "configuration"),
];

pub(super) fn model(file: &[u8]) -> Result<Model> {
    check_onnx_start(file)?;
    let mut ir_version = 0;
    let mut producer_name = String::new();
    let mut producer_version = String::new();
    let mut graph = None;
    let mut opsets = BTreeMap::new();
    let mut opset_count = 0;
    let mut metadata = Vec::new();
    for field in Fields::new(file) {
        let (number, value) = field.map_err(|e| {
            wire_error(e, |n| match n {
                8 => format!("opset_import[{opset_count}]"),
                14 => format!("metadata_props[{}]", metadata.len()),
                n => named(n, MODEL_FIELDS),
            })
        })?;
        match number {
            1 => ir_version = int64(value, "ir_version")?,
            2 => producer_name = string(value, "producer_name")?,
            3 => producer_version = string(value, "producer_version")?,
            7 => graph = Some(self::graph(bytes(value, "graph")?).map_err(|e| e.within("graph"))?),
            8 => {
                let segment = format!("opset_import[{opset_count}]");
                let (domain, version) =
                    opset(bytes(value, &segment)?).map_err(|e| e.within(&segment))?;
                if opsets.insert(domain.clone(), version).is_some() {
                    return Err(
                        OnnxError::invalid(format!("domain {domain:?} is imported twice"))
                            .within(&segment),
                    );
                }
                opset_count += 1;
            }
            14 => {
                let segment = format!("metadata_props[{}]", metadata.len());
                metadata
                    .push(string_pair(bytes(value, &segment)?).map_err(|e| e.within(&segment))?);
            }
            _ => {}
        }
    }
    let Some(graph) = graph else {
        return Err(OnnxError::NotOnnx("it has no graph".into()));
    };
    if !opsets.contains_key("") {
        return Err(
            OnnxError::invalid("no version for the default domain (ai.onnx)")
                .within("opset_import"),
        );
    }
    Ok(Model {
        ir_version,
        opsets,
        producer_name,
        producer_version,
        graph,
        metadata,
    })
}

/// Tells a file that is no ONNX model at all from a damaged one: serializers write fields in
/// number order, so every ONNX file starts with `ir_version` (field 1, a varint).
fn check_onnx_start(file: &[u8]) -> Result<()> {
    let not_onnx = |why: String| Err(OnnxError::NotOnnx(why));
    if file.is_empty() {
        return not_onnx("the input is empty".into());
    }
    for (magic, what) in [
        (&b"\x89PNG"[..], "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (
            b"PK\x03\x04",
            "a ZIP archive (a PyTorch .pt checkpoint is one: export it to ONNX first)",
        ),
    ] {
        if file.starts_with(magic) {
            return not_onnx(format!("it is {what}"));
        }
    }
    match Fields::new(file).next() {
        Some(Ok((1, Value::Varint(_)))) => Ok(()),
        _ => {
            let head: Vec<String> = file.iter().take(8).map(|b| format!("{b:02x}")).collect();
            not_onnx(format!(
                "it does not start with an ir_version field (first bytes: {})",
                head.join(" ")
            ))
        }
    }
}

fn opset(buf: &[u8]) -> Result<(String, i64)> {
    let mut domain = String::new();
    let mut version = None;
    for field in Fields::new(buf) {
        let (number, value) =
            field.map_err(|e| wire_error(e, |n| named(n, &[(1, "domain"), (2, "version")])))?;
        match number {
            1 => domain = string(value, "domain")?,
            2 => version = Some(int64(value, "version")?),
            _ => {}
        }
    }
    let version = version.ok_or_else(|| OnnxError::invalid("version is missing"))?;
    // The spec names the default domain both "" and "ai.onnx".
    if domain == "ai.onnx" {
        domain.clear();
    }
    Ok((domain, version))
}

fn string_pair(buf: &[u8]) -> Result<(String, String)> {
    let (mut key, mut value_string) = (String::new(), String::new());
    for field in Fields::new(buf) {
        let (number, value) =
            field.map_err(|e| wire_error(e, |n| named(n, &[(1, "key"), (2, "value")])))?;
        match number {
            1 => key = string(value, "key")?,
            2 => value_string = string(value, "value")?,
            _ => {}
        }
    }
    Ok((key, value_string))
}

fn graph(buf: &[u8]) -> Result<Graph> {
    let mut g = Graph::default();
    for field in Fields::new(buf) {
        let (number, value) = field.map_err(|e| {
            wire_error(e, |n| match n {
                1 => format!("node[{}]", g.nodes.len()),
                5 => format!("initializer[{}]", g.initializers.len()),
                11 => format!("input[{}]", g.inputs.len()),
                12 => format!("output[{}]", g.outputs.len()),
                13 => format!("value_info[{}]", g.value_info.len()),
                n => named(
                    n,
                    &[(2, "name"), (10, "doc_string"), (15, "sparse_initializer")],
                ),
            })
        })?;
        match number {
            1 => {
                let b = bytes(value, format_args!("node[{}]", g.nodes.len()))?;
                let decoded = node(b).map_err(|e| e.within(&node_segment(g.nodes.len(), b)))?;
                g.nodes.push(decoded);
            }
            2 => g.name = string(value, "name")?,
            5 => {
                let segment = |b| element("initializer", g.initializers.len(), b, 8);
                let b = bytes(value, format_args!("initializer[{}]", g.initializers.len()))?;
                let decoded = tensor(b).map_err(|e| e.within(&segment(b)))?;
                g.initializers.push(decoded);
            }
            11..=13 => {
                let (kind, list) = match number {
                    11 => ("input", &mut g.inputs),
                    12 => ("output", &mut g.outputs),
                    _ => ("value_info", &mut g.value_info),
                };
                let b = bytes(value, format_args!("{kind}[{}]", list.len()))?;
                let decoded =
                    value_info(b).map_err(|e| e.within(&element(kind, list.len(), b, 1)))?;
                list.push(decoded);
            }
            // Silently dropping weights would only fail later, as a confusing missing input.
            15 => {
                return Err(OnnxError::unsupported(
                    "sparse initializers; export with dense weights",
                )
                .within("sparse_initializer"));
            }
            _ => {}
        }
    }
    Ok(g)
}

/// `node[3] (Conv "model.0.conv")`, as much of it as the node's bytes give.
fn node_segment(index: usize, buf: &[u8]) -> String {
    let op_type = peek_string(buf, 4).filter(|s| !s.is_empty());
    let name = peek_string(buf, 3).filter(|s| !s.is_empty());
    match (op_type, name) {
        (Some(op), Some(name)) => format!("node[{index}] ({op} {name:?})"),
        (Some(op), None) => format!("node[{index}] ({op})"),
        (None, Some(name)) => format!("node[{index}] ({name:?})"),
        (None, None) => format!("node[{index}]"),
    }
}

fn node(buf: &[u8]) -> Result<Node> {
    let mut n = Node::default();
    for field in Fields::new(buf) {
        let (number, value) = field.map_err(|e| {
            wire_error(e, |number| match number {
                1 => format!("input[{}]", n.inputs.len()),
                2 => format!("output[{}]", n.outputs.len()),
                5 => format!("attribute[{}]", n.attributes.len()),
                number => named(
                    number,
                    &[
                        (3, "name"),
                        (4, "op_type"),
                        (6, "doc_string"),
                        (7, "domain"),
                    ],
                ),
            })
        })?;
        match number {
            1 => n
                .inputs
                .push(string(value, format_args!("input[{}]", n.inputs.len()))?),
            2 => n
                .outputs
                .push(string(value, format_args!("output[{}]", n.outputs.len()))?),
            3 => n.name = string(value, "name")?,
            4 => n.op_type = string(value, "op_type")?,
            5 => {
                let b = bytes(value, format_args!("attribute[{}]", n.attributes.len()))?;
                let decoded = attribute(b)
                    .map_err(|e| e.within(&element("attribute", n.attributes.len(), b, 1)))?;
                n.attributes.push(decoded);
            }
            7 => n.domain = string(value, "domain")?,
            _ => {}
        }
    }
    if n.domain == "ai.onnx" {
        n.domain.clear();
    }
    Ok(n)
}

fn attribute(buf: &[u8]) -> Result<Attribute> {
    let mut name = String::new();
    let mut kind = None;
    let (mut f, mut i, mut s, mut t) = (None, None, None, None);
    let (mut floats, mut ints, mut strings) = (Vec::new(), Vec::new(), Vec::new());
    let mut references_function_attribute = false;
    for field in Fields::new(buf) {
        let (number, value) = field.map_err(|e| {
            wire_error(e, |n| {
                named(
                    n,
                    &[
                        (1, "name"),
                        (2, "f"),
                        (3, "i"),
                        (4, "s"),
                        (5, "t"),
                        (7, "floats"),
                        (8, "ints"),
                        (9, "strings"),
                        (20, "type"),
                    ],
                )
            })
        })?;
        match number {
            1 => name = string(value, "name")?,
            2 => match value {
                Value::Fixed32(bits) => f = Some(f32::from_bits(bits)),
                other => return Err(mismatch(other, "32-bit", "f")),
            },
            3 => i = Some(int64(value, "i")?),
            4 => s = Some(bytes(value, "s")?.to_vec()),
            5 => t = Some(bytes(value, "t")?),
            7 => wire::repeated_fixed32(value, &mut floats)
                .map_err(|e| OnnxError::invalid(e).within("floats"))?,
            8 => wire::repeated_varint(value, &mut ints)
                .map_err(|e| OnnxError::invalid(e).within("ints"))?,
            9 => strings.push(bytes(value, "strings")?.to_vec()),
            20 => kind = Some(int32(value, "type")?),
            21 => references_function_attribute = true,
            _ => {}
        }
    }
    if references_function_attribute {
        return Err(OnnxError::unsupported(
            "ref_attr_name (a function attribute reference) outside a function",
        ));
    }
    // AttributeProto.AttributeType; the value fields are proto2 optionals with zero defaults.
    let value = match kind {
        Some(1) => AttributeValue::Float(f.unwrap_or(0.0)),
        Some(2) => AttributeValue::Int(i.unwrap_or(0)),
        Some(3) => AttributeValue::String(s.unwrap_or_default()),
        Some(4) => {
            let t = t.ok_or_else(|| OnnxError::invalid("TENSOR attribute without t"))?;
            AttributeValue::Tensor(tensor(t).map_err(|e| e.within("t"))?)
        }
        Some(6) => AttributeValue::Floats(floats.into_iter().map(f32::from_bits).collect()),
        Some(7) => AttributeValue::Ints(ints.into_iter().map(|v| v as i64).collect()),
        Some(8) => AttributeValue::Strings(strings),
        Some(5 | 10) => {
            return Err(OnnxError::unsupported(
                "subgraph attribute (control flow such as If, Loop or Scan)",
            ));
        }
        Some(other @ (9 | 11..=14)) => {
            let what = match other {
                9 => "TENSORS",
                11 => "SPARSE_TENSOR",
                12 => "SPARSE_TENSORS",
                13 => "TYPE_PROTO",
                _ => "TYPE_PROTOS",
            };
            return Err(OnnxError::unsupported(format!("{what} attribute")));
        }
        Some(other) => {
            return Err(OnnxError::invalid(format!(
                "unknown attribute type {other}"
            )));
        }
        None => return Err(OnnxError::invalid("type is missing")),
    };
    Ok(Attribute { name, value })
}

fn tensor(buf: &[u8]) -> Result<Tensor> {
    let mut name = String::new();
    let mut dims_raw = Vec::new();
    let mut code = 0;
    let mut raw = None;
    let mut float_data = Vec::new();
    let mut int32_data = Vec::new();
    let mut int64_data = Vec::new();
    let mut double_data = Vec::new();
    let mut other_data = None;
    let mut segmented = false;
    let mut external = false;
    for field in Fields::new(buf) {
        let (number, value) = field.map_err(|e| {
            wire_error(e, |n| {
                named(
                    n,
                    &[
                        (1, "dims"),
                        (2, "data_type"),
                        (3, "segment"),
                        (4, "float_data"),
                        (5, "int32_data"),
                        (6, "string_data"),
                        (7, "int64_data"),
                        (8, "name"),
                        (9, "raw_data"),
                        (10, "double_data"),
                        (11, "uint64_data"),
                        (12, "doc_string"),
                        (13, "external_data"),
                        (14, "data_location"),
                    ],
                )
            })
        })?;
        let repeated = |result: std::result::Result<(), String>, field: &str| {
            result.map_err(|e| OnnxError::invalid(e).within(field))
        };
        match number {
            1 => repeated(wire::repeated_varint(value, &mut dims_raw), "dims")?,
            2 => code = int32(value, "data_type")?,
            3 => segmented = true,
            4 => repeated(wire::repeated_fixed32(value, &mut float_data), "float_data")?,
            5 => repeated(wire::repeated_varint(value, &mut int32_data), "int32_data")?,
            6 => other_data = Some("string_data"),
            7 => repeated(wire::repeated_varint(value, &mut int64_data), "int64_data")?,
            8 => name = string(value, "name")?,
            9 => raw = Some(bytes(value, "raw_data")?),
            10 => repeated(
                wire::repeated_fixed64(value, &mut double_data),
                "double_data",
            )?,
            11 => other_data = Some("uint64_data"),
            // Entries naming a file mean the bytes are elsewhere, whatever data_location says.
            13 => external = true,
            // DataLocation: 0 DEFAULT, 1 EXTERNAL.
            14 => external |= int32(value, "data_location")? == 1,
            _ => {}
        }
    }
    if external {
        return Err(OnnxError::unsupported(
            "external data (data_location = EXTERNAL): the weights are in a separate file; \
             export the model with its weights inside the .onnx file",
        ));
    }
    if segmented {
        return Err(OnnxError::unsupported("segmented tensor"));
    }
    let dims: Vec<i64> = dims_raw.into_iter().map(|d| d as i64).collect();
    if let Some(d) = dims.iter().find(|&&d| d < 0) {
        return Err(OnnxError::invalid(format!(
            "dims {dims:?} contain the negative size {d}"
        )));
    }
    // Element count, checked before anything of that size exists.
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
        .ok_or_else(|| {
            OnnxError::invalid(format!(
                "dims {dims:?} hold more elements than fit in memory"
            ))
        })?;
    let data_type = DataType::from_code(code);
    let described = || format!("{data_type} {dims:?}");
    let (width, typed_field, typed_len) = match data_type {
        DataType::Float => (4, "float_data", float_data.len()),
        DataType::Double => (8, "double_data", double_data.len()),
        DataType::Int64 => (8, "int64_data", int64_data.len()),
        DataType::Int32 => (4, "int32_data", int32_data.len()),
        // The spec stores these in int32_data too, one element per value (FLOAT16 as its bits).
        DataType::Float16 => (2, "int32_data", int32_data.len()),
        DataType::Uint8 | DataType::Int8 | DataType::Bool => (1, "int32_data", int32_data.len()),
        DataType::Other(0) => return Err(OnnxError::invalid("data_type is missing")),
        other => return Err(OnnxError::unsupported(format!("{other} tensors"))),
    };
    let stray = [
        ("float_data", float_data.len()),
        ("int32_data", int32_data.len()),
        ("int64_data", int64_data.len()),
        ("double_data", double_data.len()),
    ]
    .into_iter()
    .filter(|&(field, len)| len > 0 && field != typed_field)
    .map(|(field, _)| field)
    .chain(other_data)
    .next();
    if let Some(field) = stray {
        return Err(OnnxError::invalid(format!(
            "{field} given for {}",
            described()
        )));
    }
    if let Some(raw) = raw {
        if typed_len > 0 {
            return Err(OnnxError::invalid(format!(
                "both raw_data and {typed_field} given"
            )));
        }
        let expected = count as u128 * width as u128;
        if raw.len() as u128 != expected {
            return Err(OnnxError::invalid(format!(
                "raw_data has {} bytes, expected {expected} for {}",
                raw.len(),
                described()
            )));
        }
        return Ok(Tensor {
            name,
            dims,
            data: from_raw(data_type, raw),
        });
    }
    if typed_len != count {
        return Err(OnnxError::invalid(if typed_len == 0 {
            format!(
                "no data (neither raw_data nor {typed_field}) for {}",
                described()
            )
        } else {
            format!(
                "{typed_field} has {typed_len} values, expected {count} for {}",
                described()
            )
        }));
    }
    let int32 = |v: u64| v as i32;
    let data = match data_type {
        DataType::Float => TensorData::F32(float_data.into_iter().map(f32::from_bits).collect()),
        DataType::Double => TensorData::F64(double_data.into_iter().map(f64::from_bits).collect()),
        DataType::Int64 => TensorData::I64(int64_data.into_iter().map(|v| v as i64).collect()),
        DataType::Int32 => TensorData::I32(int32_data.into_iter().map(int32).collect()),
        DataType::Float16 => {
            TensorData::F16(narrow(&int32_data, data_type, |v| u16::try_from(v).ok())?)
        }
        DataType::Uint8 => {
            TensorData::U8(narrow(&int32_data, data_type, |v| u8::try_from(v).ok())?)
        }
        DataType::Int8 => TensorData::I8(narrow(&int32_data, data_type, |v| i8::try_from(v).ok())?),
        // Any non-zero value is true, as for raw_data bytes and numpy's astype(bool).
        _ => TensorData::Bool(int32_data.into_iter().map(|v| v != 0).collect()),
    };
    Ok(Tensor { name, dims, data })
}

/// Converts `int32_data` elements to a narrower type, refusing values outside its range.
fn narrow<T>(
    values: &[u64],
    data_type: DataType,
    convert: impl Fn(i32) -> Option<T>,
) -> Result<Vec<T>> {
    values
        .iter()
        .enumerate()
        .map(|(index, &v)| {
            let v = v as i32;
            convert(v).ok_or_else(|| {
                OnnxError::invalid(format!(
                    "int32_data[{index}] = {v} is out of range for {data_type}"
                ))
            })
        })
        .collect()
}

/// Decodes little-endian `raw_data` whose length has been checked against the type's width.
fn from_raw(data_type: DataType, raw: &[u8]) -> TensorData {
    match data_type {
        DataType::Float => TensorData::F32(
            raw.as_chunks()
                .0
                .iter()
                .map(|b| f32::from_le_bytes(*b))
                .collect(),
        ),
        DataType::Double => TensorData::F64(
            raw.as_chunks()
                .0
                .iter()
                .map(|b| f64::from_le_bytes(*b))
                .collect(),
        ),
        DataType::Int64 => TensorData::I64(
            raw.as_chunks()
                .0
                .iter()
                .map(|b| i64::from_le_bytes(*b))
                .collect(),
        ),
        DataType::Int32 => TensorData::I32(
            raw.as_chunks()
                .0
                .iter()
                .map(|b| i32::from_le_bytes(*b))
                .collect(),
        ),
        DataType::Float16 => TensorData::F16(
            raw.as_chunks()
                .0
                .iter()
                .map(|b| u16::from_le_bytes(*b))
                .collect(),
        ),
        DataType::Uint8 => TensorData::U8(raw.to_vec()),
        DataType::Int8 => TensorData::I8(raw.iter().map(|&b| b as i8).collect()),
        _ => TensorData::Bool(raw.iter().map(|&b| b != 0).collect()),
    }
}

fn value_info(buf: &[u8]) -> Result<ValueInfo> {
    let mut name = String::new();
    let mut tensor_type = None;
    for field in Fields::new(buf) {
        let (number, value) =
            field.map_err(|e| wire_error(e, |n| named(n, &[(1, "name"), (2, "type")])))?;
        match number {
            1 => name = string(value, "name")?,
            2 => tensor_type = type_proto(bytes(value, "type")?).map_err(|e| e.within("type"))?,
            _ => {}
        }
    }
    Ok(ValueInfo { name, tensor_type })
}

fn type_proto(buf: &[u8]) -> Result<Option<TensorType>> {
    let mut tensor = None;
    for field in Fields::new(buf) {
        let (number, value) =
            field.map_err(|e| wire_error(e, |n| named(n, &[(1, "tensor_type")])))?;
        let other = match number {
            1 => {
                let b = bytes(value, "tensor_type")?;
                tensor = Some(tensor_type(b).map_err(|e| e.within("tensor_type"))?);
                continue;
            }
            4 => "sequence_type",
            5 => "map_type",
            7 => "opaque_type",
            8 => "sparse_tensor_type",
            9 => "optional_type",
            _ => continue,
        };
        return Err(OnnxError::unsupported(format!(
            "{other}; only dense tensors are supported"
        )));
    }
    Ok(tensor)
}

fn tensor_type(buf: &[u8]) -> Result<TensorType> {
    let mut elem_type = DataType::Other(0);
    let mut shape = None;
    for field in Fields::new(buf) {
        let (number, value) =
            field.map_err(|e| wire_error(e, |n| named(n, &[(1, "elem_type"), (2, "shape")])))?;
        match number {
            1 => elem_type = DataType::from_code(int32(value, "elem_type")?),
            2 => shape = Some(tensor_shape(bytes(value, "shape")?).map_err(|e| e.within("shape"))?),
            _ => {}
        }
    }
    Ok(TensorType { elem_type, shape })
}

fn tensor_shape(buf: &[u8]) -> Result<Vec<Dim>> {
    let mut dims = Vec::new();
    for field in Fields::new(buf) {
        let (number, value) =
            field.map_err(|e| wire_error(e, |_| format!("dim[{}]", dims.len())))?;
        if number == 1 {
            let segment = format!("dim[{}]", dims.len());
            dims.push(dim(bytes(value, &segment)?).map_err(|e| e.within(&segment))?);
        }
    }
    Ok(dims)
}

fn dim(buf: &[u8]) -> Result<Dim> {
    let mut dim = Dim::Unknown;
    for field in Fields::new(buf) {
        let (number, value) = field
            .map_err(|e| wire_error(e, |n| named(n, &[(1, "dim_value"), (2, "dim_param")])))?;
        // A oneof: the last member on the wire wins.
        match number {
            // Some converters write -1 for "unknown" although the spec wants dim_param or nothing.
            1 => {
                dim = Some(int64(value, "dim_value")?)
                    .filter(|&v| v >= 0)
                    .map_or(Dim::Unknown, Dim::Fixed)
            }
            2 => dim = Dim::Symbolic(string(value, "dim_param")?),
            _ => {}
        }
    }
    Ok(dim)
}

#[cfg(test)]
mod tests {
    use super::super::parse_model;
    use super::*;

    // A minimal protobuf writer for hand-made messages.
    fn varint_bytes(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }
    fn vint(number: u32, v: u64) -> Vec<u8> {
        [varint_bytes(u64::from(number) << 3), varint_bytes(v)].concat()
    }
    fn len(number: u32, payload: &[u8]) -> Vec<u8> {
        [
            varint_bytes(u64::from(number) << 3 | 2),
            varint_bytes(payload.len() as u64),
            payload.to_vec(),
        ]
        .concat()
    }
    fn fixed32(number: u32, v: u32) -> Vec<u8> {
        [
            varint_bytes(u64::from(number) << 3 | 5),
            v.to_le_bytes().to_vec(),
        ]
        .concat()
    }

    /// ir_version 8, opset 17, and `graph` (GraphProto fields).
    fn model_bytes(graph: &[Vec<u8>]) -> Vec<u8> {
        [
            vint(1, 8),
            len(7, &graph.concat()),
            len(8, &[len(1, b""), vint(2, 17)].concat()),
        ]
        .concat()
    }

    fn initializer(fields: &[Vec<u8>]) -> Vec<u8> {
        len(5, &fields.concat())
    }

    fn error(graph: &[Vec<u8>]) -> String {
        parse_model(&model_bytes(graph)).unwrap_err().to_string()
    }

    fn one_tensor(fields: &[Vec<u8>]) -> std::result::Result<Tensor, String> {
        tensor(&fields.concat()).map_err(|e| e.to_string())
    }

    const FLOAT: u64 = 1;

    #[test]
    fn raw_data_length_is_checked_against_dims_and_type() {
        assert_eq!(
            error(&[initializer(&[
                vint(1, 3),
                vint(2, FLOAT),
                len(8, b"w"),
                len(9, &[0; 10])
            ])]),
            r#"graph.initializer[0] "w": raw_data has 10 bytes, expected 12 for FLOAT [3]"#
        );
        // Dims whose product overflows, or claims 2^40 elements, cost no allocation.
        assert_eq!(
            one_tensor(&[
                vint(1, 1 << 20),
                vint(1, 1 << 20),
                vint(2, FLOAT),
                len(9, &[0; 4])
            ]),
            Err("raw_data has 4 bytes, expected 4398046511104 for FLOAT [1048576, 1048576]".into())
        );
        assert_eq!(
            one_tensor(&[vint(1, 1 << 40), vint(1, 1 << 40), vint(1, 1 << 40), vint(2, FLOAT)]),
            Err("dims [1099511627776, 1099511627776, 1099511627776] hold more elements than fit in memory".into())
        );
        assert_eq!(
            one_tensor(&[vint(1, 2), vint(1, u64::MAX), vint(2, FLOAT)]),
            Err("dims [2, -1] contain the negative size -1".into())
        );
    }

    #[test]
    fn dims_and_typed_data_may_be_packed_or_not() {
        let unpacked = one_tensor(&[
            vint(1, 2),
            vint(1, 1),
            vint(2, FLOAT),
            fixed32(4, 1.5f32.to_bits()),
            fixed32(4, 0),
        ]);
        let packed_floats: Vec<u8> = [1.5f32, 0.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        let packed = one_tensor(&[len(1, &[2, 1]), vint(2, FLOAT), len(4, &packed_floats)]);
        assert_eq!(unpacked, packed);
        let t = packed.unwrap();
        assert_eq!(
            (t.dims, t.data),
            (vec![2, 1], TensorData::F32(vec![1.5, 0.0]))
        );
    }

    #[test]
    fn int32_data_carries_small_types_within_their_range() {
        let int32_data = |code: u64, values: &[i64]| {
            let run: Vec<u8> = values
                .iter()
                .flat_map(|&v| varint_bytes(v as u64))
                .collect();
            one_tensor(&[vint(1, values.len() as u64), vint(2, code), len(5, &run)]).map(|t| t.data)
        };
        assert_eq!(
            int32_data(10, &[0x3c00, 0xfc00]),
            Ok(TensorData::F16(vec![0x3c00, 0xfc00]))
        );
        assert_eq!(
            int32_data(3, &[-128, 127]),
            Ok(TensorData::I8(vec![-128, 127]))
        );
        assert_eq!(int32_data(2, &[0, 255]), Ok(TensorData::U8(vec![0, 255])));
        assert_eq!(
            int32_data(9, &[1, 0, 2]),
            Ok(TensorData::Bool(vec![true, false, true]))
        );
        assert_eq!(int32_data(6, &[-5]), Ok(TensorData::I32(vec![-5])));
        for (code, values, message) in [
            (
                2,
                &[0, 256][..],
                "int32_data[1] = 256 is out of range for UINT8",
            ),
            (3, &[-129], "int32_data[0] = -129 is out of range for INT8"),
            (10, &[-1], "int32_data[0] = -1 is out of range for FLOAT16"),
        ] {
            assert_eq!(int32_data(code, values), Err(message.into()));
        }
    }

    #[test]
    fn tensor_data_must_come_from_exactly_the_right_place() {
        let one_float = fixed32(4, 0);
        for (fields, message) in [
            (
                vec![vint(2, FLOAT), vint(7, 1)],
                "int64_data given for FLOAT []",
            ),
            (
                vec![vint(2, FLOAT), len(9, &[0; 4]), one_float.clone()],
                "both raw_data and float_data given",
            ),
            (
                vec![vint(1, 2), vint(2, FLOAT), one_float.clone()],
                "float_data has 1 values, expected 2 for FLOAT [2]",
            ),
            (
                vec![vint(1, 2), vint(2, FLOAT)],
                "no data (neither raw_data nor float_data) for FLOAT [2]",
            ),
            (vec![one_float.clone()], "data_type is missing"),
            (
                vec![vint(2, 8), len(6, b"a")],
                "unsupported: STRING tensors",
            ),
            (
                vec![vint(2, 12), vint(11, 1)],
                "unsupported: UINT32 tensors",
            ),
            (vec![vint(2, 17)], "unsupported: data type 17 tensors"),
            (
                vec![vint(2, FLOAT), len(3, &vint(1, 0))],
                "unsupported: segmented tensor",
            ),
            (
                vec![vint(2, FLOAT), vint(14, 1)],
                "unsupported: external data (data_location = EXTERNAL): the weights are in a separate file; export the model with its weights inside the .onnx file",
            ),
        ] {
            assert_eq!(one_tensor(&fields), Err(message.into()));
        }
        // A scalar and an empty tensor need no data field at all... the empty one.
        assert_eq!(
            one_tensor(&[vint(1, 0), vint(2, 7)]).map(|t| t.data),
            Ok(TensorData::I64(vec![]))
        );
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let node = [
            vint(1000, 1),
            len(3, b"n"),
            [varint_bytes(999 << 3 | 1), vec![0; 8]].concat(),
            len(4, b"Relu"),
            fixed32(998, 0),
            len(997, b"future"),
            len(1, b"x"),
            len(2, b"y"),
        ];
        let model = parse_model(&model_bytes(&[len(1, &node.concat())])).unwrap();
        let n = &model.graph.nodes[0];
        assert_eq!(
            (
                n.name.as_str(),
                n.op_type.as_str(),
                &n.inputs[..],
                &n.outputs[..]
            ),
            ("n", "Relu", &["x".to_owned()][..], &["y".to_owned()][..])
        );
    }

    #[test]
    fn broken_nodes_are_named_by_the_op_type_and_name_readable_before_the_break() {
        // The attribute (field 5) claims 50 bytes; name and op_type follow it on the wire.
        let node = [
            len(1, b"x"),
            vec![0x2a, 50, 1, 2],
            len(3, b"model.0.conv"),
            len(4, b"Conv"),
        ]
        .concat();
        assert_eq!(
            error(&[len(1, &[len(4, b"Relu")].concat()), len(1, &node)]),
            r#"graph.node[1].attribute[0]: truncated length-delimited field"#
        );
        let node = [
            len(1, b"x"),
            len(3, b"model.0.conv"),
            len(4, b"Conv"),
            len(5, &[len(1, b"pads"), vint(20, 7)].concat()),
            vec![0x2a, 50, 1],
        ]
        .concat();
        assert_eq!(
            error(&[len(1, &node)]),
            r#"graph.node[0] (Conv "model.0.conv").attribute[1]: truncated length-delimited field"#
        );
        let wrong_type = [
            len(3, b"a"),
            len(4, b"Add"),
            len(5, &[len(1, b"axis"), vint(20, 2), fixed32(3, 0)].concat()),
        ]
        .concat();
        assert_eq!(
            error(&[len(1, &wrong_type)]),
            r#"graph.node[0] (Add "a").attribute[0] "axis".i: expected a varint field, found wire type 32-bit"#
        );
        assert_eq!(
            error(&[vint(2, 5)]),
            "graph.name: expected a length-delimited field, found wire type varint"
        );
    }

    #[test]
    fn attributes_of_unsupported_or_missing_kinds() {
        let attribute = |fields: &[Vec<u8>]| {
            let node = [
                len(4, b"Op"),
                len(5, &[len(1, b"a"), fields.concat()].concat()),
            ]
            .concat();
            error(&[len(1, &node)])
        };
        assert_eq!(
            attribute(&[]),
            r#"graph.node[0] (Op).attribute[0] "a": type is missing"#
        );
        assert_eq!(
            attribute(&[vint(20, 9)]),
            r#"graph.node[0] (Op).attribute[0] "a": unsupported: TENSORS attribute"#
        );
        assert_eq!(
            attribute(&[vint(20, 99)]),
            r#"graph.node[0] (Op).attribute[0] "a": unknown attribute type 99"#
        );
        assert_eq!(
            attribute(&[vint(20, 4)]),
            r#"graph.node[0] (Op).attribute[0] "a": TENSOR attribute without t"#
        );
        assert_eq!(
            attribute(&[vint(20, 2), len(21, b"alpha")]),
            r#"graph.node[0] (Op).attribute[0] "a": unsupported: ref_attr_name (a function attribute reference) outside a function"#
        );
        let tensor_attr = attribute(&[
            vint(20, 4),
            len(5, &[vint(1, 2), vint(2, FLOAT), len(9, &[0; 4])].concat()),
        ]);
        assert_eq!(
            tensor_attr,
            r#"graph.node[0] (Op).attribute[0] "a".t: raw_data has 4 bytes, expected 8 for FLOAT [2]"#
        );
    }

    #[test]
    fn opsets_fold_ai_onnx_into_the_default_domain_and_must_include_it() {
        let opset = |domain: &[u8], version| len(8, &[len(1, domain), vint(2, version)].concat());
        let with = |opsets: &[Vec<u8>]| {
            let graph = len(7, &len(2, b"g"));
            parse_model(&[vec![vint(1, 8), graph], opsets.to_vec()].concat().concat())
        };
        let model = with(&[opset(b"ai.onnx", 13), opset(b"com.microsoft", 1)]).unwrap();
        assert_eq!(
            model.opsets,
            BTreeMap::from([(String::new(), 13), ("com.microsoft".into(), 1)])
        );
        assert_eq!(
            with(&[opset(b"", 13), opset(b"ai.onnx", 11)])
                .unwrap_err()
                .to_string(),
            r#"opset_import[1]: domain "" is imported twice"#
        );
        assert_eq!(
            with(&[opset(b"com.microsoft", 1)]).unwrap_err().to_string(),
            "opset_import: no version for the default domain (ai.onnx)"
        );
        assert_eq!(
            with(&[len(8, &len(1, b""))]).unwrap_err().to_string(),
            "opset_import[0]: version is missing"
        );
    }

    #[test]
    fn value_types_and_dims() {
        let dim = |fields: &[Vec<u8>]| len(1, &fields.concat());
        let shape = len(
            2,
            &[
                dim(&[len(2, b"batch")]),
                dim(&[vint(1, 3)]),
                dim(&[]),
                dim(&[vint(1, u64::MAX)]),
                dim(&[len(2, b"n"), vint(1, 4)]),
            ]
            .concat(),
        );
        let input = [
            len(1, b"x"),
            len(2, &len(1, &[vint(1, 10), shape].concat())),
        ]
        .concat();
        let model = parse_model(&model_bytes(&[len(11, &input)])).unwrap();
        let tensor_type = model.graph.inputs[0].tensor_type.clone().unwrap();
        assert_eq!(tensor_type.elem_type, DataType::Float16);
        assert_eq!(
            tensor_type.shape.unwrap(),
            // -1 (seen from some converters) is unknown; a oneof's last member wins.
            [
                Dim::Symbolic("batch".into()),
                Dim::Fixed(3),
                Dim::Unknown,
                Dim::Unknown,
                Dim::Fixed(4)
            ]
        );
        let sequence = [len(1, b"seq"), len(2, &len(4, b""))].concat();
        assert_eq!(
            error(&[len(12, &sequence)]),
            r#"graph.output[0] "seq".type: unsupported: sequence_type; only dense tensors are supported"#
        );
        assert_eq!(
            error(&[len(15, b"")]),
            "graph.sparse_initializer: unsupported: sparse initializers; export with dense weights"
        );
    }

    #[test]
    fn files_that_are_not_onnx_say_so() {
        for (bytes, message) in [
            (&b""[..], "not an ONNX model: the input is empty"),
            (
                b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
                "not an ONNX model: it is a PNG image",
            ),
            (b"\xff\xd8\xff\xe0", "not an ONNX model: it is a JPEG image"),
            (
                b"PK\x03\x04\x14\0",
                "not an ONNX model: it is a ZIP archive (a PyTorch .pt checkpoint is one: export it to ONNX first)",
            ),
            (
                b"hello world\n",
                "not an ONNX model: it does not start with an ir_version field (first bytes: 68 65 6c 6c 6f 20 77 6f)",
            ),
            (b"\x08\x08", "not an ONNX model: it has no graph"),
        ] {
            assert_eq!(parse_model(bytes).unwrap_err().to_string(), message);
        }
    }
}
