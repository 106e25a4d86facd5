//! One conformance suite that every backend must pass, on seeded random shapes and data (never
//! zeros). Activations are checked against their definitions in f64; every other op against the
//! CPU reference ops, which `reference_ops.rs` checks against naive definitions. Ops that only
//! move values must match exactly; arithmetic within a relative error.
//!
//! The GPU backend runs the suite in both precisions. In f16 the data are f16 values (so that
//! what only moves values still matches exactly) and arithmetic is held to f16's rounding of its
//! results: the kernels sum in f32 and round once, when they store.
//!
//! The GPU suite fails, rather than skips, when no adapter is found: CI installs lavapipe.

#[path = "support/tensor_cores.rs"]
mod tensor_cores;

use rand::{Rng, SeedableRng, rngs::StdRng};
use vision_engine::{
    Activation, Backend, ConvKernels, CpuBackend, EngineError, GpuBackend, Precision, Tensor,
    cpu::{self, BinaryOp, Conv2d, CoordinateTransform, MaxPool2d, NearestRounding},
    f16::{f16_to_f32, f32_to_f16},
};

/// Values in [-8, 8), each one a value of `precision`.
fn random_tensor(rng: &mut StdRng, precision: Precision, shape: &[usize]) -> Tensor {
    let len = shape.iter().product();
    let values = (0..len).map(|_| rng.random_range(-8.0f32..8.0));
    let data = match precision {
        Precision::F32 => values.collect(),
        Precision::F16 => values.map(|v| f16_to_f32(f32_to_f16(v))).collect(),
    };
    Tensor::new(shape.to_vec(), data).unwrap()
}

/// Relative error allowed for arithmetic results stored in `precision`: a few of its units of
/// rounding (f16: 2^-11 ≈ 4.9e-4 per value).
fn tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::F32 => 1e-5,
        Precision::F16 => 1e-3,
    }
}

/// ‖out − ref‖ / ‖ref‖, after checking the shapes agree.
fn relative_error(out: &Tensor, expected: &Tensor) -> f64 {
    assert_eq!(out.shape(), expected.shape());
    let diff: f64 = out
        .data()
        .iter()
        .zip(expected.data())
        .map(|(&o, &e)| f64::from(o - e).powi(2))
        .sum();
    let norm: f64 = expected.data().iter().map(|&e| f64::from(e).powi(2)).sum();
    (diff / norm).sqrt()
}

fn assert_close(
    backend: &impl Backend,
    tolerance: f64,
    what: &str,
    out: &Tensor,
    expected: &Tensor,
) {
    let err = relative_error(out, expected);
    assert!(
        err <= tolerance,
        "{} {what}: relative error {err:e}",
        backend.name()
    );
}

/// Lengths around workgroup boundaries, plus one past 65,535 workgroups so the grid spills into y.
const ACTIVATION_LENGTHS: [usize; 5] = [1, 255, 257, 100_003, 65_535 * 256 + 1_000];

async fn activations_match_their_definitions(backend: &impl Backend, precision: Precision) {
    for kind in Activation::ALL {
        for (seed, len) in ACTIVATION_LENGTHS.into_iter().enumerate() {
            let input = random_tensor(&mut StdRng::seed_from_u64(seed as u64), precision, &[len]);
            let out = backend.activation(kind, &input).await.unwrap();
            for (i, (&o, &x)) in out.data().iter().zip(input.data()).enumerate() {
                let x = f64::from(x);
                let sigmoid = 1.0 / (1.0 + (-x).exp());
                let e = match kind {
                    Activation::Sigmoid => sigmoid,
                    Activation::Silu => x * sigmoid,
                };
                assert!(
                    (f64::from(o) - e).abs() <= 1e-6 + tolerance(precision) * e.abs(),
                    "{} {kind:?} len {len}: element {i} of input {x} is {o}, expected {e}",
                    backend.name()
                );
            }
        }
    }
}

async fn empty_input_gives_empty_output(backend: &impl Backend, _: Precision) {
    let out = backend
        .activation(Activation::Silu, &Tensor::zeros(vec![0]))
        .await
        .unwrap();
    assert!(out.is_empty());
    let out = backend
        .transpose(&Tensor::zeros(vec![2, 0, 3]), &[2, 1, 0])
        .await
        .unwrap();
    assert_eq!(out.shape(), [3, 0, 2]);
}

async fn conv_matches_the_reference(backend: &impl Backend, precision: Precision) {
    conv_matches_the_reference_within(backend, precision, tolerance(precision)).await;
}

/// `conv_matches_the_reference` with tensors in `precision` and results within `tolerance`.
async fn conv_matches_the_reference_within(
    backend: &impl Backend,
    precision: Precision,
    tolerance: f64,
) {
    let mut rng = StdRng::seed_from_u64(21);
    // (C, H, W, M, k, stride, pad, dilation, group): stem, 1x1, depthwise, dilated grouped; then
    // shapes past every GPU tile size in channels, pixels and reduction (none a multiple of a
    // tile), 3x3 and 1x1, grouped; a layer of few channels large enough for the tensor cores'
    // 32x128 tiles (`choose_coop_tiling`); then random ones.
    let mut cases = vec![
        (3, 32, 32, 16, 3, 2, 1, 1, 1),
        (16, 16, 16, 32, 1, 1, 0, 1, 1),
        (32, 9, 11, 32, 3, 1, 1, 1, 32),
        (8, 13, 7, 12, 3, 2, 2, 2, 4),
        (19, 21, 23, 70, 3, 1, 1, 1, 1),
        (37, 17, 19, 45, 1, 1, 0, 1, 1),
        (38, 15, 17, 82, 3, 2, 1, 1, 2),
        (8, 130, 131, 24, 3, 1, 1, 1, 1),
    ];
    for _ in 0..8 {
        let g = [1, 2, 4][rng.random_range(0..3)];
        let k = rng.random_range(1..4);
        cases.push((
            g * rng.random_range(1..4),
            k + rng.random_range(0..9),
            k + rng.random_range(0..9),
            g * rng.random_range(1..5),
            k,
            rng.random_range(1..3),
            rng.random_range(0..2),
            1,
            g,
        ));
    }
    for (c, h, w, m, k, s, p, d, g) in cases {
        let x = random_tensor(&mut rng, precision, &[1, c, h, w]);
        let weight = random_tensor(&mut rng, precision, &[m, c / g, k, k]);
        let bias = random_tensor(&mut rng, precision, &[m]);
        let attrs = Conv2d {
            strides: [s, s],
            pads: [p, p, p, p],
            dilations: [d, d],
            group: g,
        };
        let out_shape = cpu::conv2d(&x, &weight, None, &attrs)
            .unwrap()
            .shape()
            .to_vec();
        let shortcut = random_tensor(&mut rng, precision, &out_shape);
        for (activation, residual) in [
            (None, None),
            (Some(Activation::Silu), None),
            (Some(Activation::Silu), Some(&shortcut)),
        ] {
            assert_conv_close(
                backend,
                tolerance,
                &format!(
                    "Conv {:?} {activation:?}, residual {}",
                    (c, h, w, m, k, s, p, d, g),
                    residual.is_some()
                ),
                (&x, &weight, &bias),
                &attrs,
                activation,
                residual,
            )
            .await;
        }
        let out = backend
            .conv2d(&x, &weight, None, &attrs, None, None)
            .await
            .unwrap();
        assert_close(
            backend,
            tolerance,
            "Conv without bias",
            &out,
            &cpu::conv2d(&x, &weight, None, &attrs).unwrap(),
        );
    }
    padded_branches_match_the_reference(backend, precision, tolerance, &mut rng).await;
}

/// A merged head's grouped convolution (`merge_sibling_convs`): two branches of 60 and 50
/// channels padded to 70, the first with its 10 channels of padding before its own, reading 16
/// of its group's 20 inputs (the rest padding too), the second with its padding after. The GPU
/// plan gives the padding and the zero weights tiles of their own (`ConvTileTable`); every
/// output, padding included, must match. A Sigmoid stores 0.5 where the padding's sums are 0.
async fn padded_branches_match_the_reference(
    backend: &impl Backend,
    precision: Precision,
    tolerance: f64,
    rng: &mut StdRng,
) {
    let (inputs, channels, taps) = (20, 70, 9);
    let x = random_tensor(rng, precision, &[1, 2 * inputs, 11, 13]);
    let mut weight = random_tensor(rng, precision, &[2 * channels, inputs, 3, 3]);
    let mut bias = random_tensor(rng, precision, &[2 * channels]);
    for (c, row) in weight.data_mut().chunks_mut(inputs * taps).enumerate() {
        // Weights of a 64th (exact in f16) keep the sums within a few units, where a Sigmoid's
        // output still follows them: on the sums of the shapes above (hundreds) it saturates,
        // and its few outputs near 0.5 would carry the tensor cores' f16 rounding alone.
        row.iter_mut().for_each(|v| *v /= 64.0);
        match c {
            0..10 => row.fill(0.0),
            10..70 => row[..4 * taps].fill(0.0),
            120.. => row.fill(0.0),
            _ => row[15 * taps..].fill(0.0),
        }
    }
    for (c, b) in bias.data_mut().iter_mut().enumerate() {
        if !(10..120).contains(&c) {
            *b = 0.0;
        }
    }
    let attrs = Conv2d {
        pads: [1; 4],
        group: 2,
        ..Conv2d::default()
    };
    for activation in [None, Some(Activation::Silu), Some(Activation::Sigmoid)] {
        assert_conv_close(
            backend,
            tolerance,
            &format!("Conv of padded branches {activation:?}"),
            (&x, &weight, &bias),
            &attrs,
            activation,
            None,
        )
        .await;
    }
}

/// The convolution of `x` by `weight` and `bias`, then `activation`, then `residual` added, on
/// `backend` against the reference.
async fn assert_conv_close(
    backend: &impl Backend,
    tolerance: f64,
    what: &str,
    (x, weight, bias): (&Tensor, &Tensor, &Tensor),
    attrs: &Conv2d,
    activation: Option<Activation>,
    residual: Option<&Tensor>,
) {
    let out = backend
        .conv2d(x, weight, Some(bias), attrs, activation, residual)
        .await
        .unwrap();
    let mut expected = cpu::conv2d(x, weight, Some(bias), attrs).unwrap();
    if let Some(a) = activation {
        expected
            .data_mut()
            .iter_mut()
            .for_each(|v| *v = a.apply(*v));
    }
    if let Some(r) = residual {
        for (v, r) in expected.data_mut().iter_mut().zip(r.data()) {
            *v += r;
        }
    }
    assert_close(backend, tolerance, what, &out, &expected);
}

async fn max_pool_matches_the_reference(backend: &impl Backend, precision: Precision) {
    let mut rng = StdRng::seed_from_u64(22);
    for (k, s, p) in [(5, 1, 2), (2, 2, 0), (3, 2, 1)] {
        let x = random_tensor(&mut rng, precision, &[1, 5, 12, 9]);
        let attrs = MaxPool2d {
            kernel: [k, k],
            strides: [s, s],
            pads: [p; 4],
            dilations: [1, 1],
        };
        let out = backend.max_pool2d(&x, &attrs).await.unwrap();
        assert_eq!(
            out,
            cpu::max_pool2d(&x, &attrs).unwrap(),
            "{} MaxPool k{k} s{s} p{p}",
            backend.name()
        );
    }
}

async fn binary_ops_match_the_reference(backend: &impl Backend, precision: Precision) {
    let mut rng = StdRng::seed_from_u64(23);
    let pairs: [(&[usize], &[usize]); 4] = [
        (&[2, 3, 4], &[2, 3, 4]),
        (&[2, 3, 4], &[4]),
        (&[2, 1, 4], &[3, 1]),
        (&[1, 84, 500], &[1, 1, 500]),
    ];
    for (sa, sb) in pairs {
        let (a, b) = (
            random_tensor(&mut rng, precision, sa),
            random_tensor(&mut rng, precision, sb),
        );
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
            let out = backend.binary(op, &a, &b).await.unwrap();
            assert_close(
                backend,
                tolerance(precision),
                &format!("{op:?} {sa:?} {sb:?}"),
                &out,
                &cpu::binary(op, &a, &b).unwrap(),
            );
        }
    }
}

/// Slice arguments: starts, ends, axes, steps.
type SliceCase<'a> = (&'a [i64], &'a [i64], &'a [i64], &'a [i64]);

async fn layout_ops_match_the_reference_exactly(backend: &impl Backend, precision: Precision) {
    let mut rng = StdRng::seed_from_u64(24);
    let x = random_tensor(&mut rng, precision, &[2, 3, 4, 5]);
    for perm in [[0, 2, 3, 1], [3, 2, 1, 0], [0, 1, 2, 3]] {
        assert_eq!(
            backend.transpose(&x, &perm).await.unwrap(),
            cpu::transpose(&x, &perm).unwrap(),
            "{} Transpose {perm:?}",
            backend.name()
        );
    }
    let slices: [SliceCase; 3] = [
        (&[1], &[4], &[3], &[1]),
        (&[-1, 0], &[i64::MIN, 3], &[2, 1], &[-2, 2]),
        (&[0], &[1], &[0], &[1]),
    ];
    for (starts, ends, axes, steps) in slices {
        let out = backend
            .slice(&x, starts, ends, Some(axes), Some(steps))
            .await
            .unwrap();
        assert_eq!(
            out,
            cpu::slice(&x, starts, ends, Some(axes), Some(steps)).unwrap(),
            "{} Slice {starts:?}",
            backend.name()
        );
    }
    let y = random_tensor(&mut rng, precision, &[2, 7, 4, 5]);
    for (parts, axis) in [(vec![&x, &y, &x], 1i64), (vec![&x, &x], -1)] {
        assert_eq!(
            backend.concat(&parts, axis).await.unwrap(),
            cpu::concat(&parts, axis).unwrap(),
            "{} Concat",
            backend.name()
        );
    }
    assert_eq!(
        backend.split(&y, 1, &[2, 5]).await.unwrap(),
        cpu::split(&y, 1, &[2, 5]).unwrap(),
        "{} Split",
        backend.name()
    );
    let (indices, shape) = ([3, -1, 0, 2, 2, -4], [2, 3]);
    assert_eq!(
        backend.gather(&x, 3, &indices, &shape).await.unwrap(),
        cpu::gather(&x, 3, &indices, &shape).unwrap(),
        "{} Gather",
        backend.name()
    );
    let scales = [1.0, 1.0, 2.0, 2.0];
    assert_eq!(
        backend
            .resize_nearest(
                &x,
                &[2, 3, 8, 10],
                Some(&scales),
                CoordinateTransform::Asymmetric,
                NearestRounding::Floor
            )
            .await
            .unwrap(),
        cpu::resize_nearest(
            &x,
            &[2, 3, 8, 10],
            Some(&scales),
            CoordinateTransform::Asymmetric,
            NearestRounding::Floor
        )
        .unwrap(),
        "{} Resize",
        backend.name()
    );
}

async fn softmax_and_matmul_match_the_reference(backend: &impl Backend, precision: Precision) {
    let mut rng = StdRng::seed_from_u64(25);
    let x = random_tensor(&mut rng, precision, &[1, 4, 16, 50]);
    for axis in [2, -1, 0] {
        assert_close(
            backend,
            tolerance(precision),
            &format!("Softmax axis {axis}"),
            &backend.softmax(&x, axis).await.unwrap(),
            &cpu::softmax(&x, axis).unwrap(),
        );
    }
    let cases: [(&[usize], &[usize]); 3] = [
        (&[33, 70], &[70, 19]),
        (&[2, 4, 5, 7], &[2, 4, 7, 6]),
        (&[3, 1, 5, 7], &[4, 7, 2]),
    ];
    for (sa, sb) in cases {
        let (a, b) = (
            random_tensor(&mut rng, precision, sa),
            random_tensor(&mut rng, precision, sb),
        );
        assert_close(
            backend,
            tolerance(precision),
            &format!("MatMul {sa:?} {sb:?}"),
            &backend.matmul(&a, &b).await.unwrap(),
            &cpu::matmul(&a, &b).unwrap(),
        );
    }
}

/// Values drawn from few levels, so rows hold many ties.
fn tied_tensor(rng: &mut StdRng, shape: &[usize], levels: i32) -> Tensor {
    let len = shape.iter().product();
    Tensor::new(
        shape.to_vec(),
        (0..len)
            .map(|_| rng.random_range(-levels..=levels) as f32 * 0.25 + 0.125)
            .collect(),
    )
    .unwrap()
}

/// In f16 the ops on run-time indices are refused: f16 holds integers exactly only up to 2,048.
async fn refused_in_f16<T: std::fmt::Debug>(result: impl Future<Output = Result<T, EngineError>>) {
    let err = result.await.unwrap_err();
    assert!(
        err.to_string().contains("run-time indices need f32"),
        "{err}"
    );
}

async fn reductions_and_top_k_match_their_definitions(
    backend: &impl Backend,
    precision: Precision,
) {
    let mut rng = StdRng::seed_from_u64(26);
    // (shape, axis, k): YOLO26's heads ([1, 8400, 80] reduced, then top 300 of 8400 and of
    // 24,000 in miniature), a middle axis, a k of the whole axis, rows longer than a workgroup.
    let cases: [(&[usize], i64, usize); 6] = [
        (&[1, 700, 7], -1, 1),
        (&[1, 700], 1, 60),
        (&[2, 9, 3], 1, 4),
        (&[3, 5], -1, 5),
        (&[1, 3000], 1, 300),
        (&[4, 1, 2], 0, 2),
    ];
    for (seed, (shape, axis, k)) in cases.into_iter().enumerate() {
        for x in [
            random_tensor(&mut rng, precision, shape),
            tied_tensor(&mut rng, shape, 3 + seed as i32),
        ] {
            let reduced = backend.reduce_max(&x, &[axis], false).await.unwrap();
            assert_eq!(
                reduced,
                cpu::reduce_max(&x, &[axis], false).unwrap(),
                "{} ReduceMax {shape:?} axis {axis}",
                backend.name()
            );
            if precision == Precision::F16 {
                refused_in_f16(backend.top_k(&x, axis, k, true)).await;
                continue;
            }
            for largest in [true, false] {
                let out = backend.top_k(&x, axis, k, largest).await.unwrap();
                // The definition: a stable sort by value keeps equal values in index order.
                let axis_n = vision_engine::normalize_axis("TopK", axis, shape.len()).unwrap();
                let (len, inner) = (shape[axis_n], shape[axis_n + 1..].iter().product::<usize>());
                let outer = x.len() / (len * inner);
                // Output element (o, t, r) is the t-th of row (o, r), in output order.
                let (mut values, mut indices) = (Vec::new(), Vec::new());
                for (o, t, r) in (0..outer)
                    .flat_map(|o| (0..k).flat_map(move |t| (0..inner).map(move |r| (o, t, r))))
                {
                    let mut row: Vec<(f32, usize)> = (0..len)
                        .map(|j| (x.data()[(o * len + j) * inner + r], j))
                        .collect();
                    row.sort_by(|a, b| {
                        let order = b.0.partial_cmp(&a.0).unwrap();
                        if largest { order } else { order.reverse() }
                    });
                    values.push(row[t].0);
                    indices.push(row[t].1 as f32);
                }
                let what = format!(
                    "{} TopK {shape:?} axis {axis} k {k} largest {largest}",
                    backend.name()
                );
                assert_eq!(out[0].data(), values, "{what}: values");
                assert_eq!(out[1].data(), indices, "{what}: indices");
                assert_eq!(out[0].shape(), out[1].shape());
            }
        }
    }
    let err = backend
        .top_k(&Tensor::zeros(vec![1, 4]), 1, 5, true)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("TopK:"), "{err}");
}

async fn gather_elements_and_expand_match_the_reference_exactly(
    backend: &impl Backend,
    precision: Precision,
) {
    let mut rng = StdRng::seed_from_u64(27);
    // (data, indices, axis): YOLO26's gathers of 300 of 8400 anchors in miniature, then others.
    let cases: [(&[usize], &[usize], i64); 4] = [
        (&[1, 500, 7], &[1, 30, 7], 1),
        (&[1, 500], &[1, 30], -1),
        (&[3, 4, 5], &[2, 4, 6], 2),
        (&[6, 2, 3], &[9, 2, 1], 0),
    ];
    for (data_shape, index_shape, axis) in cases {
        let data = random_tensor(&mut rng, precision, data_shape);
        let axis_n =
            vision_engine::normalize_axis("GatherElements", axis, data_shape.len()).unwrap();
        let len = data_shape[axis_n] as i64;
        let count: usize = index_shape.iter().product();
        let indices = Tensor::new(
            index_shape.to_vec(),
            (0..count)
                .map(|_| rng.random_range(-len..len) as f32)
                .collect(),
        )
        .unwrap();
        if precision == Precision::F16 {
            refused_in_f16(backend.gather_elements(&data, &indices, axis)).await;
            continue;
        }
        assert_eq!(
            backend
                .gather_elements(&data, &indices, axis)
                .await
                .unwrap(),
            cpu::gather_elements(&data, &indices, axis).unwrap(),
            "{} GatherElements {data_shape:?} {index_shape:?} axis {axis}",
            backend.name()
        );
    }
    let x = random_tensor(&mut rng, precision, &[1, 30, 1]);
    for shape in [&[1, 1, 80][..], &[2, 1, 30, 4], &[30, 1]] {
        assert_eq!(
            backend.expand(&x, shape).await.unwrap(),
            cpu::expand(&x, shape).unwrap(),
            "{} Expand to {shape:?}",
            backend.name()
        );
    }
    let err = backend
        .gather_elements(&x, &Tensor::zeros(vec![1, 2]), 1)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("GatherElements:"), "{err}");
}

async fn integer_div_and_mod_match_their_definitions(backend: &impl Backend, precision: Precision) {
    let mut rng = StdRng::seed_from_u64(28);
    let shape = [1, 300];
    let a = Tensor::new(
        shape.to_vec(),
        (0..300)
            .map(|_| rng.random_range(-24_000..24_000) as f32)
            .collect(),
    )
    .unwrap();
    for divisor in [80.0, -7.0, 1.0] {
        let b = Tensor::new(vec![], vec![divisor]).unwrap();
        for op in [BinaryOp::IntDiv, BinaryOp::Mod, BinaryOp::Fmod] {
            if precision == Precision::F16 {
                refused_in_f16(backend.binary(op, &a, &b)).await;
                continue;
            }
            let out = backend.binary(op, &a, &b).await.unwrap();
            let expected: Vec<f32> = a
                .data()
                .iter()
                .map(|&x| {
                    let (x, y) = (x as i64, divisor as i64);
                    (match op {
                        BinaryOp::IntDiv => x / y,
                        BinaryOp::Fmod => x % y,
                        _ => ((x % y) + y) % y,
                    }) as f32
                })
                .collect();
            assert_eq!(
                out.data(),
                expected,
                "{} {op:?} by {divisor}",
                backend.name()
            );
        }
    }
    let zero = Tensor::new(vec![1], vec![0.0]).unwrap();
    let err = backend.binary(BinaryOp::Mod, &a, &zero).await.unwrap_err();
    assert!(err.to_string().starts_with("Mod:"), "{err}");
}

async fn bad_shapes_are_errors_naming_the_op(backend: &impl Backend, _: Precision) {
    let x = Tensor::zeros(vec![1, 4, 8, 8]);
    let err = backend
        .conv2d(
            &x,
            &Tensor::zeros(vec![2, 3, 3, 3]),
            None,
            &Conv2d::default(),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("Conv:"), "{err}");
    let err = backend
        .conv2d(
            &x,
            &Tensor::zeros(vec![2, 4, 3, 3]),
            None,
            &Conv2d::default(),
            None,
            Some(&Tensor::zeros(vec![1, 2, 8, 8])),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("Conv:") && err.to_string().contains("residual"),
        "{err}"
    );
    let err = backend
        .binary(BinaryOp::Mul, &x, &Tensor::zeros(vec![3]))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("Mul:"), "{err}");
    let err = backend.gather(&x, 1, &[4], &[1]).await.unwrap_err();
    assert!(err.to_string().starts_with("Gather:"), "{err}");
}

macro_rules! conformance_suite {
    ($module:ident, $backend:expr, $precision:expr) => {
        mod $module {
            use super::*;

            macro_rules! check {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        pollster::block_on(async { super::$name(&$backend, $precision).await });
                    }
                };
            }

            check!(activations_match_their_definitions);
            check!(empty_input_gives_empty_output);
            check!(conv_matches_the_reference);
            check!(max_pool_matches_the_reference);
            check!(binary_ops_match_the_reference);
            check!(layout_ops_match_the_reference_exactly);
            check!(softmax_and_matmul_match_the_reference);
            check!(bad_shapes_are_errors_naming_the_op);
            check!(reductions_and_top_k_match_their_definitions);
            check!(gather_elements_and_expand_match_the_reference_exactly);
            check!(integer_div_and_mod_match_their_definitions);
        }
    };
}

const NEEDS_ADAPTER: &str = "the GPU suite needs an adapter (CI uses lavapipe from \
    mesa-vulkan-drivers, which has shader-f16)";

/// Every GPU convolution kernel, each tiling forced on every layer, whole and split along k, in
/// both precisions, against the reference.
#[test]
fn every_gpu_conv_kernel_matches_the_reference() {
    pollster::block_on(async {
        for precision in Precision::ALL {
            let gpu = GpuBackend::with_precision(precision)
                .await
                .expect(NEEDS_ADAPTER);
            // Split-k into more slices than some layers have k tiles: empty slices add zeros.
            let splits = [
                ConvKernels::Split {
                    tiling: 0,
                    slices: 3,
                },
                ConvKernels::Split {
                    tiling: 1,
                    slices: 5,
                },
            ];
            let choices = [
                ConvKernels::Direct,
                ConvKernels::Tiled,
                ConvKernels::TiledWhole,
            ]
            .into_iter()
            .chain((0..kernels::CONV_TILINGS.len()).map(ConvKernels::Tiling))
            .chain(splits);
            for choice in choices {
                eprintln!("conv kernels: {choice:?}"); // named in a failure's output
                gpu.set_conv_kernels(choice);
                conv_matches_the_reference(&gpu, precision).await;
            }
        }
    });
}

/// The convolution with its products on matrix units (f16 factors, f32 sums), whole and split,
/// on tensors of both precisions within f16's tolerance; skipped, saying so, on adapters without
/// them unless required (`tensor_cores::gpu_on_tensor_cores`).
#[test]
fn tensor_core_convolutions_match_the_reference() {
    pollster::block_on(async {
        for precision in Precision::ALL {
            let Some(gpu) = tensor_cores::gpu_on_tensor_cores(precision).await else {
                return;
            };
            conv_matches_the_reference_within(&gpu, precision, tolerance(Precision::F16)).await;
        }
    });
}

conformance_suite!(cpu_backend, CpuBackend, Precision::F32);
/// The GPU backend in `precision` with its f32 arithmetic throughout: on an adapter with matrix
/// units, whose convolutions would multiply in f16, the kernels of one without
/// (`tensor_core_convolutions_match_the_reference` checks those).
async fn gpu_with_f32_arithmetic(precision: Precision) -> GpuBackend {
    let gpu = GpuBackend::with_precision(precision)
        .await
        .expect(NEEDS_ADAPTER);
    gpu.set_conv_kernels(gpu.f32_conv_kernels());
    gpu
}

conformance_suite!(
    gpu_backend,
    gpu_with_f32_arithmetic(Precision::F32).await,
    Precision::F32
);
conformance_suite!(
    gpu_backend_f16,
    gpu_with_f32_arithmetic(Precision::F16).await,
    Precision::F16
);
