//! Whole models against ONNX Runtime. `fixtures/make_detector_fixture.py` builds a miniature
//! detector with the op structure of Ultralytics detect exports and stores ONNX Runtime's outputs
//! for two inputs; every backend must reproduce them, raw and after decoding and NMS. The same
//! check runs in the browser (`browser.rs`); real Ultralytics models are checked on the GPU
//! machine (`tools/ultralytics_parity.py`, results in PARITY.md).

mod support;
#[path = "support/tensor_cores.rs"]
mod tensor_cores;

use support::{
    ANCHORS, CLASSES, ORT_OUTPUTS, Tolerance, max_class_score_difference, network, relative_error,
};
use vision_engine::{
    ConvKernels, CpuBackend, CpuNetwork, GpuBackend, Precision,
    graph::{Executor, Op, OpByOp, Step},
    letterbox::{self, Letterbox},
    npy,
};

#[test]
fn loading_folds_the_shape_subgraph_fuses_silu_and_merges_sibling_convolutions() {
    let network = network();
    assert_eq!(network.input_shape, [1, 3, 64, 64]);
    assert_eq!(
        network.outputs,
        [("output0".to_string(), vec![1, 4 + CLASSES, ANCHORS])]
    );
    assert_eq!(
        network.class_names.as_deref(),
        Some(&["scratch".to_string(), "dent".into(), "crack".into()][..])
    );
    let counts = network.op_counts();
    // Every Conv -> Sigmoid -> Mul of the model became one fused step: 30 conv blocks with SiLU,
    // 7 plain convs (the box and class branches' outputs at three levels, and the DFL). The head's
    // two branches at each level (a 3x3 block, then a 1x1 conv) were merged: their blocks into
    // one (27 blocks in all), their outputs into one grouped conv (4 plain convs). The only
    // activation left is the class-score sigmoid, and no Shape/Gather/Concat of the DFL reshape
    // survives. The shortcut Adds of the C2f blocks (1 + 2 bottlenecks) are fused into the
    // convolutions that end their bottlenecks.
    assert_eq!(counts.get("Conv+Activation"), Some(&24), "{counts:?}");
    assert_eq!(counts.get("Conv+Activation+Add"), Some(&3), "{counts:?}");
    let shortcuts: Vec<&str> = network
        .steps
        .iter()
        .filter(|s| matches!(s.op, Op::Conv { residual: true, .. }))
        .map(|s| s.node.as_str())
        .collect();
    assert!(
        shortcuts
            .iter()
            .all(|node| node.starts_with("/Conv_") && node.contains(" + /Add_")),
        "{shortcuts:?}"
    );
    assert_eq!(counts.get("Conv"), Some(&4), "{counts:?}");
    // Each merged level hands its branches their channels through a Split: box distributions (64),
    // class scores (3), then the class branch's padding to the box branch's width (61). At the
    // last level the class branch comes first in the graph, and the first branch's padding comes
    // before its channels. The C2f blocks and the DFL head have four more.
    assert_eq!(counts.get("Split"), Some(&7), "{counts:?}");
    let merged: Vec<&[Step]> = network
        .steps
        .windows(3)
        .filter(|w| matches!(&w[2].op, Op::Split { axis: 1, .. }) && w[1].node == w[2].node)
        .collect();
    let sizes: Vec<&[usize]> = merged
        .iter()
        .map(|w| match &w[2].op {
            Op::Split { sizes, .. } => sizes.as_slice(),
            _ => unreachable!("filtered"),
        })
        .collect();
    assert_eq!(sizes, [[64, 3, 61], [64, 3, 61], [61, 3, 64]]);
    for w in merged {
        let (
            Op::Conv {
                attrs: blocks,
                activation: Some(_),
                ..
            },
            Op::Conv {
                attrs: outputs,
                activation: None,
                ..
            },
        ) = (&w[0].op, &w[1].op)
        else {
            panic!("{w:?}");
        };
        assert_eq!((blocks.group, outputs.group), (1, 2), "{w:?}");
        assert!(w[0].node.contains(" + ") && w[1].node == w[2].node, "{w:?}");
    }
    // The model's own products (its convolutions, the DFL's included, and attention's matrix
    // products), not the merge's zero padding.
    assert_eq!(network.flops(), 4_628_800);
    assert_eq!(counts.get("Activation"), Some(&1), "{counts:?}");
    assert_eq!(
        counts.get("Gather"),
        Some(&1),
        "only the Gather on image data runs: {counts:?}"
    );
    assert!(!counts.contains_key("Shape"));
}

#[test]
fn the_reference_outputs_depend_on_the_input() {
    let [a, b] = ORT_OUTPUTS.map(|bytes| npy::read(bytes).unwrap());
    assert!(
        relative_error(&a, &b) > 1e-3,
        "a model blind to its input would make the parity test meaningless"
    );
    assert!(max_class_score_difference(&a, &b) > 1e-2);
}

#[test]
fn cpu_backend_matches_onnx_runtime() {
    let network = network();
    let executor = OpByOp {
        network: &network,
        backend: &CpuBackend,
    };
    pollster::block_on(support::matches_onnx_runtime(
        &executor,
        &Tolerance::of(Precision::F32),
    ));
}

/// The prepared CPU network (weights packed once, value storage reused between inferences)
/// against ONNX Runtime, and bit for bit against the op-by-op reference it must reproduce.
#[test]
fn prepared_cpu_network_matches_onnx_runtime_and_the_op_by_op_backend() {
    pollster::block_on(async {
        let network = network();
        let prepared = CpuNetwork::new(&network).unwrap();
        let tolerance = Tolerance::of(Precision::F32);
        // The second pass runs on the storage the first one freed.
        support::matches_onnx_runtime(&prepared, &tolerance).await;
        support::matches_onnx_runtime(&prepared, &tolerance).await;
        let op_by_op = OpByOp {
            network: &network,
            backend: &CpuBackend,
        };
        for input in support::INPUTS {
            let input = npy::read(input).unwrap();
            assert_eq!(
                prepared.execute(input.clone()).await.unwrap(),
                op_by_op.execute(input).await.unwrap()
            );
        }
    });
}

const NEEDS_ADAPTER: &str = "the GPU suite needs an adapter (CI uses lavapipe from \
    mesa-vulkan-drivers, which has shader-f16)";

/// In f32 within 1e-4 of ONNX Runtime; in f16 (lavapipe has shader-f16) the same detections,
/// boxes within a quarter of an input pixel (`Tolerance::of`).
#[test]
fn gpu_backend_matches_onnx_runtime_op_by_op_and_resident_in_both_precisions() {
    pollster::block_on(async {
        let network = network();
        for precision in Precision::ALL {
            let gpu = GpuBackend::with_precision(precision)
                .await
                .expect(NEEDS_ADAPTER);
            // Split-k, with its partial sums in the buffer plan, as GPUs run it: lavapipe is a
            // software adapter, which would run every layer whole (`conv_kernels_for`;
            // conformance.rs checks each choice op by op).
            gpu.set_conv_kernels(ConvKernels::Tiled);
            let tolerance = Tolerance::of(precision);
            let op_by_op = OpByOp {
                network: &network,
                backend: &gpu,
            };
            support::matches_onnx_runtime(&op_by_op, &tolerance).await;
            let prepared = gpu.prepare(&network).unwrap();
            // The shortcuts of the two C2f blocks with shortcuts (1 + 2 bottlenecks), fused into
            // their convolutions, read their input, which lies in the output of the Concat they
            // write into, through their output binding (`residual.wgsl`; network.rs's tests check
            // the binding): that path is what this checks.
            let mut shortcuts: Vec<&str> = prepared
                .launch_entries()
                .map(|(node, _)| node)
                .filter(|node| node.contains(" + /Add_"))
                .collect();
            shortcuts.dedup(); // a split convolution's two launches
            assert_eq!(shortcuts.len(), 3, "{}: {shortcuts:?}", precision.name());
            // Submitted in chunks of 8, 16, 32...: more than 8 + 16 launches take three
            // submissions, so this checks that later ones see what earlier ones wrote.
            assert!(prepared.launch_count() > 24, "{}", prepared.launch_count());
            support::matches_onnx_runtime(&prepared, &tolerance).await;
            // Inference after inference reuses the same buffers: run the check a second time.
            support::matches_onnx_runtime(&prepared, &tolerance).await;
            println!(
                "GPU activations in {}: {} bytes planned; the largest step reads and writes {} bytes",
                precision.name(),
                prepared.activation_bytes(),
                prepared.largest_step_bytes()
            );
        }
    });
}

/// The resident network with its convolutions' products on matrix units (f16 factors, f32 sums)
/// against ONNX Runtime within f16's tolerance; skipped, saying so, on adapters without them
/// unless required (`tensor_cores::gpu_on_tensor_cores`).
#[test]
fn gpu_network_on_tensor_cores_matches_onnx_runtime() {
    pollster::block_on(async {
        let Some(gpu) = tensor_cores::gpu_on_tensor_cores(Precision::F32).await else {
            return;
        };
        let network = network();
        let prepared = gpu.prepare(&network).unwrap();
        support::matches_onnx_runtime(&prepared, &Tolerance::of(Precision::F16)).await;
    });
}

#[test]
fn gpu_letterbox_matches_the_cpu_reference_in_both_precisions() {
    pollster::block_on(async {
        for precision in Precision::ALL {
            let gpu = GpuBackend::with_precision(precision)
                .await
                .expect(NEEDS_ADAPTER);
            // f16 stores values in [0.5, 1] within 2^-12 of themselves.
            let tolerance = match precision {
                Precision::F32 => 1e-5,
                Precision::F16 => 3e-4,
            };
            // Downscaled wide, upscaled small, exactly the resized size, tall and odd.
            for (i, (w, h)) in [(1280, 720), (40, 30), (64, 48), (37, 91), (64, 64)]
                .into_iter()
                .enumerate()
            {
                let rgba = support::test_image(w, h, i as u32 + 1);
                let lb = Letterbox::new(w, h, 64, 64);
                let expected = letterbox::to_input(&rgba, &lb);
                let out = gpu.letterbox(&rgba, &lb).await.unwrap();
                assert_eq!(out.shape(), expected.shape());
                let worst = out
                    .data()
                    .iter()
                    .zip(expected.data())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(
                    worst <= tolerance,
                    "{w}x{h} in {}: letterbox differs by {worst}",
                    precision.name()
                );
            }
        }
    });
}

#[test]
fn the_detector_on_the_gpu_finds_what_it_finds_on_the_cpu_in_both_precisions() {
    pollster::block_on(async {
        for precision in Precision::ALL {
            let gpu = GpuBackend::with_precision(precision)
                .await
                .expect(NEEDS_ADAPTER);
            support::gpu_detector_agrees_with_cpu(&gpu).await;
        }
    });
}

// The end-to-end (NMS-free) head of YOLO26 exports against ONNX Runtime:
// `fixtures/make_end_to_end_fixture.py` puts that head (ReduceMax, two TopK, GatherElements,
// Expand, integer Mod and Div) on the miniature detector and stores ONNX Runtime's `[1, 20, 6]`
// outputs for its two inputs. Every backend must reproduce them, raw and as detections; real
// YOLO26n exports are checked on the GPU machine (`tools/ultralytics_parity.py`, PARITY.md).
mod end_to_end {
    use super::support::{
        self,
        end_to_end::{K, MODEL, ORT_OUTPUTS, column, matches_onnx_runtime, network},
        relative_error,
    };
    use vision_engine::{
        CpuBackend, CpuNetwork, Detector, GpuBackend,
        end_to_end::decode_end_to_end,
        graph::{Network, OpByOp},
        letterbox::Letterbox,
        npy, onnx,
        postprocess::NmsOptions,
    };

    #[test]
    fn loading_folds_the_expand_targets_and_keeps_the_head_on_the_backend() {
        let network = network();
        assert_eq!(network.outputs, [("output0".to_string(), vec![1, K, 6])]);
        let counts = network.op_counts();
        for (op, n) in [
            ("ReduceMax", 1),
            ("TopK", 2),
            ("GatherElements", 3),
            ("Expand", 2),
        ] {
            assert_eq!(counts.get(op), Some(&n), "{op}: {counts:?}");
        }
    }

    /// The load error for the fixture with `edit` applied to the head's first node of type `op`.
    fn load_error(op: &str, edit: impl Fn(&mut onnx::Node)) -> String {
        let mut model = onnx::parse_model(MODEL).unwrap();
        let node = model.graph.nodes.iter_mut();
        edit(
            node.filter(|n| n.name.starts_with("/head/"))
                .find(|n| n.op_type == op)
                .unwrap(),
        );
        match Network::from_onnx(&model) {
            Ok(_) => panic!("the edited {op} loaded"),
            Err(e) => e.to_string(),
        }
    }

    fn set_int(node: &mut onnx::Node, name: &str, value: i64) {
        node.attributes.retain(|a| a.name != name);
        node.attributes.push(onnx::Attribute {
            name: name.into(),
            value: onnx::AttributeValue::Int(value),
        });
    }

    #[test]
    fn what_the_head_cannot_run_is_a_load_error_naming_the_node() {
        let err = load_error("TopK", |n| set_int(n, "sorted", 0));
        assert!(
            err.starts_with("unsupported operator TopK (node \"/head/TopK_")
                && err.contains("sorted 0"),
            "{err}"
        );
        let err = load_error("Mod", |n| set_int(n, "fmod", 2));
        assert!(err.contains("(Mod): fmod 2 is neither 0 nor 1"), "{err}");
        let err = load_error("ReduceMax", |n| {
            n.attributes.retain(|a| a.name != "axes");
            n.attributes.push(onnx::Attribute {
                name: "axes".into(),
                value: onnx::AttributeValue::Ints(vec![0, 2]),
            });
        });
        assert!(
            err.contains("ReduceMax: axes [0, 2] are not contiguous"),
            "{err}"
        );
        // Integers at run time stay exact only through moves and integer Div/Mod.
        let err = load_error("Div", |n| n.op_type = "Add".into());
        assert!(err.contains("Add on run-time integers"), "{err}");
    }

    #[test]
    fn the_reference_outputs_depend_on_the_input() {
        let [a, b] = ORT_OUTPUTS.map(|bytes| npy::read(bytes).unwrap());
        assert!(relative_error(&a, &b) > 1e-2, "a blind runtime would pass");
        assert_ne!(
            column(&a, 5),
            column(&b, 5),
            "other classes win on the other input"
        );
    }

    #[test]
    fn cpu_backend_matches_onnx_runtime_op_by_op_and_prepared() {
        let network = network();
        pollster::block_on(matches_onnx_runtime(&OpByOp {
            network: &network,
            backend: &CpuBackend,
        }));
        let prepared = CpuNetwork::new(&network).unwrap();
        pollster::block_on(matches_onnx_runtime(&prepared));
        pollster::block_on(matches_onnx_runtime(&prepared));
    }

    #[test]
    fn gpu_backend_matches_onnx_runtime_op_by_op_and_resident() {
        pollster::block_on(async {
            let gpu = GpuBackend::new().await.expect(
                "the GPU suite needs an adapter (CI uses lavapipe from mesa-vulkan-drivers)",
            );
            // ONNX Runtime's f32 within f32's rounding: not the f16 factors of matrix units.
            gpu.set_conv_kernels(gpu.f32_conv_kernels());
            let network = network();
            matches_onnx_runtime(&OpByOp {
                network: &network,
                backend: &gpu,
            })
            .await;
            let prepared = gpu.prepare(&network).unwrap();
            matches_onnx_runtime(&prepared).await;
            matches_onnx_runtime(&prepared).await;
        });
    }

    #[test]
    fn the_detector_maps_end_to_end_boxes_through_the_letterbox_on_both_backends() {
        pollster::block_on(async {
            let gpu = GpuBackend::new()
                .await
                .expect("the GPU suite needs an adapter");
            // The CPU's raw outputs within f32's rounding: not the f16 factors of matrix units.
            gpu.set_conv_kernels(gpu.f32_conv_kernels());
            let detector = Detector::from_onnx_bytes(MODEL).unwrap();
            assert_eq!(detector.labels(), ["scratch", "dent", "crack"]);
            let prepared = gpu.prepare(detector.network()).unwrap();
            let cpu = OpByOp {
                network: detector.network(),
                backend: &CpuBackend,
            };
            let (w, h) = (96, 72);
            let rgba = support::test_image(w, h, 11);
            let all = NmsOptions {
                confidence: 0.0,
                ..NmsOptions::default()
            };
            // A threshold halfway between the 5th and 6th best scores of this image keeps the 5
            // best (at the 6th score itself, the GPU's rounding decides whether it is kept).
            let (_, first) = detector
                .detect_with_raw_output(&cpu, &rgba, w, h, all)
                .await
                .unwrap();
            let (fifth, sixth) = (first.data()[4 * 6 + 4], first.data()[5 * 6 + 4]);
            assert!(fifth - sixth > 1e-4, "{fifth} and {sixth}: a tie");
            let options = NmsOptions {
                confidence: (fifth + sixth) / 2.0,
                ..all
            };
            let [(on_gpu, gpu_raw), (on_cpu, cpu_raw)] =
                support::detect_on_both(&detector, (&prepared, &cpu), &rgba, (w, h), options).await;
            assert!(relative_error(&gpu_raw, &cpu_raw) <= 1e-4);
            let letterbox = Letterbox::new(w, h, 64, 64);
            let raw = decode_end_to_end(cpu_raw.data(), Some(3), options).unwrap();
            assert_eq!(raw.len(), 5);
            assert_eq!(on_cpu.detections.len(), raw.len());
            assert_eq!(on_gpu.detections.len(), raw.len());
            for ((c, g), r) in on_cpu.detections.iter().zip(&on_gpu.detections).zip(&raw) {
                assert_eq!((c.class_id, g.class_id), (r.class_id, r.class_id));
                assert_eq!(
                    c.bbox,
                    letterbox.to_source(r.bbox),
                    "CPU boxes in image pixels"
                );
                let close = c
                    .bbox
                    .iter()
                    .zip(&g.bbox)
                    .all(|(x, y)| (x - y).abs() <= 0.05);
                assert!(close, "{:?} vs {:?}", c.bbox, g.bbox);
            }
        });
    }
}
