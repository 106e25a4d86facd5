//! The ONNX reader against real files: the models in `tests/fixtures/onnx/` were written by the
//! `onnx` Python package, and each `.json` beside a model is what `onnx` itself reads from that
//! file (`tests/fixtures/make_onnx_fixtures.py` makes both). Plus damaged and hostile inputs,
//! which must give errors, never panics or allocations sized by what the bytes claim.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value as Json, json};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use vision_engine::onnx::{
    AttributeValue, DataType, Dim, Model, OnnxError, Tensor, TensorData, ValueInfo, class_names,
    f16_to_f32, parse_model,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/onnx/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sidecar(name: &str) -> Json {
    serde_json::from_slice(&fixture(&format!("{name}.json"))).unwrap()
}

fn load(name: &str) -> Model {
    parse_model(&fixture(&format!("{name}.onnx"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

// Our model in the sidecar's layout (floats as bit patterns, bytes as hex).

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe_tensor(t: &Tensor) -> Json {
    let values = match &t.data {
        TensorData::F32(v) => json!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
        TensorData::F16(v) => json!(v),
        TensorData::F64(v) => json!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
        TensorData::I64(v) => json!(v),
        TensorData::I32(v) => json!(v),
        TensorData::U8(v) => json!(v),
        TensorData::I8(v) => json!(v),
        TensorData::Bool(v) => json!(v),
    };
    let mut out = json!({
        "name": t.name,
        "dims": t.dims,
        "data_type": t.data.data_type().to_string(),
        "values": values,
    });
    if let TensorData::F16(v) = &t.data {
        let widened: Vec<u32> = v.iter().map(|&h| f16_to_f32(h).to_bits()).collect();
        out["as_f32"] = json!(widened);
    }
    out
}

fn describe_attribute(value: &AttributeValue) -> (&'static str, Json) {
    match value {
        AttributeValue::Float(f) => ("FLOAT", json!(f.to_bits())),
        AttributeValue::Int(i) => ("INT", json!(i)),
        AttributeValue::String(s) => ("STRING", json!(hex(s))),
        AttributeValue::Tensor(t) => ("TENSOR", describe_tensor(t)),
        AttributeValue::Floats(v) => (
            "FLOATS",
            json!(v.iter().map(|f| f.to_bits()).collect::<Vec<_>>()),
        ),
        AttributeValue::Ints(v) => ("INTS", json!(v)),
        AttributeValue::Strings(v) => (
            "STRINGS",
            json!(v.iter().map(|s| hex(s)).collect::<Vec<_>>()),
        ),
    }
}

fn describe_value_info(v: &ValueInfo) -> Json {
    let Some(t) = &v.tensor_type else {
        return json!({ "name": v.name, "elem_type": null, "shape": null });
    };
    let shape = t.shape.as_ref().map(|dims| {
        dims.iter()
            .map(|d| match d {
                Dim::Fixed(n) => json!(n),
                Dim::Symbolic(s) => json!(s),
                Dim::Unknown => Json::Null,
            })
            .collect::<Vec<_>>()
    });
    json!({ "name": v.name, "elem_type": t.elem_type.to_string(), "shape": shape })
}

fn describe(model: &Model) -> Json {
    let g = &model.graph;
    let nodes: Vec<Json> = g
        .nodes
        .iter()
        .map(|n| {
            let attributes: Vec<Json> = n
                .attributes
                .iter()
                .map(|a| {
                    let (kind, value) = describe_attribute(&a.value);
                    json!({ "name": a.name, "type": kind, "value": value })
                })
                .collect();
            json!({
                "name": n.name, "op_type": n.op_type, "domain": n.domain,
                "inputs": n.inputs, "outputs": n.outputs, "attributes": attributes,
            })
        })
        .collect();
    let infos = |list: &[ValueInfo]| list.iter().map(describe_value_info).collect::<Vec<_>>();
    json!({
        "ir_version": model.ir_version,
        "opsets": model.opsets,
        "producer_name": model.producer_name,
        "producer_version": model.producer_version,
        "metadata": model.metadata,
        "class_names": class_names(model).unwrap(),
        "graph": {
            "name": g.name,
            "nodes": nodes,
            "initializers": g.initializers.iter().map(describe_tensor).collect::<Vec<_>>(),
            "inputs": infos(&g.inputs),
            "outputs": infos(&g.outputs),
            "value_info": infos(&g.value_info),
        },
    })
}

/// Every place where `ours` and `theirs` differ, by JSON path.
fn differences(path: &str, ours: &Json, theirs: &Json, out: &mut Vec<String>) {
    match (ours, theirs) {
        (Json::Object(a), Json::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let (x, y) = (
                    a.get(key).unwrap_or(&Json::Null),
                    b.get(key).unwrap_or(&Json::Null),
                );
                differences(&format!("{path}.{key}"), x, y, out);
            }
        }
        (Json::Array(a), Json::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ if ours != theirs => out.push(format!("{path}: ours {ours}, onnx {theirs}")),
        _ => {}
    }
}

fn assert_reads_like_onnx(name: &str) -> Model {
    let model = load(name);
    let mut theirs = sidecar(name);
    theirs.as_object_mut().unwrap().remove("onnx_version");
    let mut diffs = Vec::new();
    differences(name, &describe(&model), &theirs, &mut diffs);
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    model
}

#[test]
fn conv_block_with_raw_data_weights_and_ultralytics_metadata() {
    let model = assert_reads_like_onnx("conv_sigmoid_mul");
    // Spot checks that the generic comparison is not vacuous.
    assert_eq!(model.opsets[""], 17);
    let conv = &model.graph.nodes[0];
    assert_eq!(
        (conv.op_type.as_str(), conv.name.as_str()),
        ("Conv", "/model.0/conv/Conv")
    );
    assert_eq!(
        conv.attribute("pads"),
        Some(&AttributeValue::Ints(vec![1, 1, 1, 1]))
    );
    assert_eq!(conv.attribute("group"), Some(&AttributeValue::Int(1)));
    let weight = &model.graph.initializers[0];
    assert_eq!(weight.dims, [4, 3, 3, 3]);
    assert!(
        matches!(&weight.data, TensorData::F32(w) if w.len() == 108 && w.iter().all(|x| *x != 0.0))
    );
    let input = model.graph.inputs[0].tensor_type.as_ref().unwrap();
    assert_eq!(input.elem_type, DataType::Float);
    assert_eq!(
        input.shape.as_deref().unwrap(),
        [
            Dim::Symbolic("batch".into()),
            Dim::Fixed(3),
            Dim::Fixed(8),
            Dim::Fixed(8)
        ]
    );
    let names = class_names(&model).unwrap().unwrap();
    assert_eq!(names.len(), 11);
    assert_eq!(names[2], "o'brien");
    assert_eq!(names[4], "it's \"both\"");
    assert_eq!(model.metadata_value("task"), Some("detect"));
}

#[test]
fn typed_repeated_fields_of_every_supported_type() {
    let model = assert_reads_like_onnx("typed_fields");
    assert_eq!(model.opsets[""], 11);
    let kinds: Vec<String> = model
        .graph
        .initializers
        .iter()
        .map(|t| t.data.data_type().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "FLOAT", "INT64", "INT64", "INT32", "INT8", "UINT8", "BOOL", "DOUBLE", "FLOAT16",
            "FLOAT", "FLOAT"
        ]
    );
    let scalar = &model.graph.initializers[9];
    assert_eq!(
        (scalar.dims.as_slice(), &scalar.data),
        (&[][..], &TensorData::F32(vec![42.0]))
    );
    assert!(model.graph.initializers[10].data.is_empty());
}

#[test]
fn fp16_weights_constants_and_every_attribute_kind() {
    let model = assert_reads_like_onnx("fp16_attributes");
    assert_eq!(model.opsets["linecheck.test"], 1);
    let probe = &model.graph.nodes[2];
    assert_eq!(probe.domain, "linecheck.test");
    assert_eq!(
        probe.attribute("s"),
        Some(&AttributeValue::String(b"nearest\xff".to_vec()))
    );
    assert_eq!(
        probe.attribute("empty_ints"),
        Some(&AttributeValue::Ints(vec![]))
    );
    // numpy's float16 -> float32 and ours agree on subnormals, -0, infinities and NaN.
    let theirs = &sidecar("fp16_attributes")["graph"]["initializers"][0]["as_f32"];
    let TensorData::F16(bits) = &model.graph.initializers[0].data else {
        panic!("w16 is not FLOAT16")
    };
    let ours: Vec<u32> = bits.iter().map(|&b| f16_to_f32(b).to_bits()).collect();
    assert_eq!(json!(ours), *theirs);
    assert!(
        f16_to_f32(bits[6]) > 0.0 && f16_to_f32(bits[6]) < 6.1e-5,
        "a subnormal"
    );
    let value_info = &model.graph.value_info;
    assert_eq!(
        value_info[0].tensor_type.as_ref().unwrap().shape,
        None,
        "rank unknown"
    );
    assert_eq!(value_info[1].tensor_type, None, "no type at all");
}

#[test]
fn control_flow_and_external_weights_are_unsupported_and_named() {
    let err = parse_model(&fixture("subgraph_if.onnx")).unwrap_err();
    assert!(matches!(err, OnnxError::Unsupported { .. }));
    assert_eq!(
        err.to_string(),
        r#"graph.node[0] (If "pick").attribute[0] "else_branch": unsupported: subgraph attribute (control flow such as If, Loop or Scan)"#
    );
    let err = parse_model(&fixture("external_data.onnx")).unwrap_err();
    assert_eq!(err.path(), Some(r#"graph.initializer[0] "weight""#));
    assert!(
        err.to_string().contains("unsupported: external data"),
        "{err}"
    );
}

#[test]
fn other_files_are_not_onnx_models() {
    for file in ["onnx/conv_sigmoid_mul.json", "make_onnx_fixtures.py"] {
        let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
        let err = parse_model(&std::fs::read(path).unwrap()).unwrap_err();
        assert!(matches!(err, OnnxError::NotOnnx(_)), "{file}: {err}");
    }
}

#[test]
fn a_corrupted_length_inside_a_real_model_is_reported_at_its_field() {
    let mut bytes = fixture("conv_sigmoid_mul.onnx");
    // The Conv node's first attribute: tag 0x2a (field 5, length-delimited), its length, then
    // the attribute's own name field `dilations`.
    let at = bytes
        .windows(13)
        .position(|w| &w[2..] == b"\x0a\x09dilations")
        .unwrap();
    assert_eq!(bytes[at], 0x2a);
    bytes[at + 1] = 0x7f;
    assert_eq!(
        parse_model(&bytes).unwrap_err().to_string(),
        r#"graph.node[0] (Conv "/model.0/conv/Conv").attribute[0]: truncated length-delimited field"#
    );
}

// Damaged and hostile input: errors only, and memory that follows the input's size.

/// Records the largest single allocation of the current thread, so that a test can check that no
/// length or shape read from the input sizes an allocation.
struct LargestAllocation;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: forwards every call to `System` unchanged; only records sizes.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Parses `bytes`, checking that no allocation exceeds 8 bytes per input byte plus a little for
/// fixed-size structures: room for a one-byte varint widened to an i64, while a declared length or
/// shape that sized an allocation would go far past it.
fn parse_within_memory(bytes: &[u8]) -> Result<Model, OnnxError> {
    LARGEST.with(|l| l.set(0));
    let result = parse_model(bytes);
    // Formatting exercises every message path; it must not panic either.
    if let Err(e) = &result {
        assert!(!e.to_string().is_empty());
    }
    let largest = LARGEST.with(Cell::get);
    assert!(
        largest <= 8 * bytes.len() + 1024,
        "{largest} bytes allocated for {} input bytes",
        bytes.len()
    );
    result
}

#[test]
fn every_truncation_fails_or_only_loses_trailing_metadata() {
    let bytes = fixture("conv_sigmoid_mul.onnx");
    let full = parse_within_memory(&bytes).unwrap();
    let mut accepted = 0;
    for end in 0..bytes.len() {
        if let Ok(model) = parse_within_memory(&bytes[..end]) {
            // Only a cut between top-level fields after the graph and opsets can still parse.
            assert_eq!(model.graph, full.graph, "cut at {end}");
            assert_eq!(model.opsets, full.opsets, "cut at {end}");
            assert!(full.metadata.starts_with(&model.metadata), "cut at {end}");
            assert!(model.metadata.len() < full.metadata.len());
            accepted += 1;
        }
    }
    // Cut before each of the metadata entries.
    assert_eq!(accepted, full.metadata.len());
}

#[test]
fn thousands_of_random_corruptions_never_panic() {
    let original = fixture("conv_sigmoid_mul.onnx");
    let mut rng = StdRng::seed_from_u64(0x0_11c5);
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..5000 {
        let mut bytes = original.clone();
        for _ in 0..rng.random_range(1..=4) {
            let i = rng.random_range(0..bytes.len());
            match rng.random_range(0..3) {
                0 => bytes[i] ^= 1 << rng.random_range(0..8),
                1 => bytes[i] = rng.random(),
                // Lengths and varints are where the edge cases are.
                _ => bytes[i] = [0x00, 0x7f, 0x80, 0xff][rng.random_range(0..4)],
            }
        }
        match parse_within_memory(&bytes) {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    // Both outcomes occur, so the corruptions reach past the first field.
    assert!(ok > 100 && failed > 100, "{ok} parsed, {failed} failed");
}

// A tiny protobuf writer for hostile hand-made files.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}
fn field(number: u64, payload: &[u8]) -> Vec<u8> {
    [
        varint(number << 3 | 2),
        varint(payload.len() as u64),
        payload.to_vec(),
    ]
    .concat()
}
fn int_field(number: u64, v: u64) -> Vec<u8> {
    [varint(number << 3), varint(v)].concat()
}
fn model_with_initializer(tensor: &[u8]) -> Vec<u8> {
    let opset = field(8, &int_field(2, 17));
    [int_field(1, 8), field(7, &field(5, tensor)), opset].concat()
}

#[test]
fn declared_sizes_never_drive_allocation() {
    let huge_dims = [
        int_field(1, 1 << 31),
        int_field(1, 1 << 31),
        int_field(2, 1),
    ]
    .concat();
    let cases = [
        // A graph that claims 2^62 bytes.
        [int_field(1, 8), varint(7 << 3 | 2), varint(1 << 62)].concat(),
        // 2^62 elements, 4 bytes of raw_data.
        model_with_initializer(&[huge_dims.clone(), field(9, &[0; 4])].concat()),
        // 2^62 elements and a packed float_data run that claims 2^40 bytes.
        model_with_initializer(&[huge_dims, varint(4 << 3 | 2), varint(1 << 40)].concat()),
    ];
    for bytes in cases {
        let err = parse_within_memory(&bytes).unwrap_err();
        assert!(matches!(err, OnnxError::Invalid { .. }), "{err}");
    }
}
