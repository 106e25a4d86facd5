//! The CPU reference ops against naive definitions written here in f64, straight from the ONNX
//! operator specs, on seeded random shapes and data (never zeros). The reference backend defines
//! what the GPU backend must reproduce, so it is checked independently of its own code.

use rand::{Rng, SeedableRng, rngs::StdRng};
use vision_engine::{
    Tensor,
    cpu::{self, BinaryOp, Conv2d, CoordinateTransform, MaxPool2d, NearestRounding},
};

fn random_tensor(rng: &mut StdRng, shape: &[usize]) -> Tensor {
    let len = shape.iter().product();
    Tensor::new(
        shape.to_vec(),
        (0..len).map(|_| rng.random_range(-2.0..2.0)).collect(),
    )
    .unwrap()
}

fn assert_close(op: &str, out: &Tensor, expected_shape: &[usize], expected: &[f64]) {
    assert_eq!(out.shape(), expected_shape, "{op}: shape");
    let diff: f64 = out
        .data()
        .iter()
        .zip(expected)
        .map(|(&o, &e)| (f64::from(o) - e).powi(2))
        .sum();
    let norm: f64 = expected.iter().map(|e| e * e).sum();
    let relative = (diff / norm).sqrt();
    assert!(relative < 1e-5, "{op}: relative error {relative:e}");
}

/// Row-major multi-index of a flat position.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for axis in (0..shape.len()).rev() {
        index[axis] = flat % shape[axis];
        flat /= shape[axis];
    }
    index
}

fn ravel(index: &[usize], shape: &[usize]) -> usize {
    index.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

fn naive_conv(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, a: &Conv2d) -> (Vec<usize>, Vec<f64>) {
    let (xs, ws) = (x.shape(), w.shape());
    let (n, h, wd) = (xs[0], xs[2], xs[3]);
    let (m, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let out_dim = |len: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize| {
        (len + p0 + p1 - d * (k - 1) - 1) / s + 1
    };
    let oh = out_dim(h, kh, a.strides[0], a.dilations[0], a.pads[0], a.pads[2]);
    let ow = out_dim(wd, kw, a.strides[1], a.dilations[1], a.pads[1], a.pads[3]);
    let mg = m / a.group;
    let mut out = Vec::new();
    for b in 0..n {
        for oc in 0..m {
            let g = oc / mg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = bias.map_or(0.0, |t| f64::from(t.data()[oc]));
                    for ic in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let y = (oy * a.strides[0] + ky * a.dilations[0]) as i64
                                    - a.pads[0] as i64;
                                let xx = (ox * a.strides[1] + kx * a.dilations[1]) as i64
                                    - a.pads[1] as i64;
                                if y < 0 || xx < 0 || y >= h as i64 || xx >= wd as i64 {
                                    continue;
                                }
                                let xv =
                                    x.data()[ravel(&[b, g * cg + ic, y as usize, xx as usize], xs)];
                                let wv = w.data()[ravel(&[oc, ic, ky, kx], ws)];
                                sum += f64::from(xv) * f64::from(wv);
                            }
                        }
                    }
                    out.push(sum);
                }
            }
        }
    }
    (vec![n, m, oh, ow], out)
}

#[test]
fn conv_matches_the_definition_for_yolo_shapes_and_random_ones() {
    let mut rng = StdRng::seed_from_u64(7);
    // (N, C, H, W, M, k, stride, pads, dilation, group): YOLO stems, 1x1 necks, depthwise, odd
    // cases, and rows wider than the GEMM's panels (interior copies between padded ends).
    let mut cases = vec![
        (1, 3, 32, 32, 16, 3, 2, [1; 4], 1, 1),
        (1, 16, 16, 16, 32, 1, 1, [0; 4], 1, 1),
        (1, 32, 9, 11, 32, 3, 1, [1; 4], 1, 32),
        (2, 8, 13, 7, 12, 3, 2, [2; 4], 2, 4),
        (1, 4, 5, 5, 6, 5, 1, [0; 4], 1, 2),
        (1, 5, 9, 45, 7, 3, 1, [1, 2, 0, 1], 1, 1),
        (1, 6, 11, 70, 8, 3, 3, [2, 3, 1, 0], 2, 2),
        (1, 4, 7, 66, 9, 5, 2, [0, 4, 2, 1], 1, 1),
    ];
    for _ in 0..20 {
        let group = [1, 2, 3][rng.random_range(0..3)];
        let k = rng.random_range(1..4);
        let d = rng.random_range(1..3);
        let size = d * (k - 1) + 1 + rng.random_range(0..8);
        cases.push((
            rng.random_range(1..3),
            group * rng.random_range(1..4),
            size,
            size + rng.random_range(0..40),
            group * rng.random_range(1..4),
            k,
            rng.random_range(1..4),
            [(); 4].map(|()| rng.random_range(0..3)),
            d,
            group,
        ));
    }
    for (n, c, h, w, m, k, s, p, d, g) in cases {
        let x = random_tensor(&mut rng, &[n, c, h, w]);
        let weight = random_tensor(&mut rng, &[m, c / g, k, k]);
        let bias = random_tensor(&mut rng, &[m]);
        let attrs = Conv2d {
            strides: [s, s],
            pads: p,
            dilations: [d, d],
            group: g,
        };
        for b in [Some(&bias), None] {
            let out = cpu::conv2d(&x, &weight, b, &attrs).unwrap();
            let (shape, expected) = naive_conv(&x, &weight, b, &attrs);
            assert_close(
                &format!("Conv {:?}", (n, c, h, w, m, k, s, p, d, g)),
                &out,
                &shape,
                &expected,
            );
        }
    }
}

#[test]
fn conv_names_shapes_that_do_not_fit() {
    let x = Tensor::zeros(vec![1, 6, 8, 8]);
    let err = cpu::conv2d(
        &x,
        &Tensor::zeros(vec![4, 4, 3, 3]),
        None,
        &Conv2d {
            group: 2,
            ..Conv2d::default()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Conv: input [1, 6, 8, 8] and weight [4, 4, 3, 3] do not fit group 2"),
        "{err}"
    );
    let err = cpu::conv2d(
        &x,
        &Tensor::zeros(vec![4, 6, 9, 9]),
        None,
        &Conv2d::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("does not fit input 8x8"), "{err}");
}

#[test]
fn max_pool_matches_the_definition() {
    let mut rng = StdRng::seed_from_u64(11);
    // SPPF (k5 s1 p2), the classic k2 s2, and a padded stride-2 k3.
    for (k, s, p) in [(5, 1, 2), (2, 2, 0), (3, 2, 1)] {
        let x = random_tensor(&mut rng, &[1, 3, 10, 9]);
        let attrs = MaxPool2d {
            kernel: [k, k],
            strides: [s, s],
            pads: [p; 4],
            dilations: [1, 1],
        };
        let out = cpu::max_pool2d(&x, &attrs).unwrap();
        let (oh, ow) = ((10 + 2 * p - k) / s + 1, (9 + 2 * p - k) / s + 1);
        let mut expected = Vec::new();
        for c in 0..3 {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = f64::NEG_INFINITY;
                    for y in (oy * s).saturating_sub(p)..(oy * s + k).saturating_sub(p).min(10) {
                        for xx in (ox * s).saturating_sub(p)..(ox * s + k).saturating_sub(p).min(9)
                        {
                            best = best.max(f64::from(x.data()[ravel(&[0, c, y, xx], x.shape())]));
                        }
                    }
                    expected.push(best);
                }
            }
        }
        assert_close(
            &format!("MaxPool k{k} s{s} p{p}"),
            &out,
            &[1, 3, oh, ow],
            &expected,
        );
    }
}

#[test]
fn nearest_resize_doubles_like_ultralytics_exports_and_follows_half_pixel_rules() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = random_tensor(&mut rng, &[1, 2, 3, 4]);
    let out = cpu::resize_nearest(
        &x,
        &[1, 2, 6, 8],
        Some(&[1.0, 1.0, 2.0, 2.0]),
        CoordinateTransform::Asymmetric,
        NearestRounding::Floor,
    )
    .unwrap();
    let expected: Vec<f64> = (0..out.len())
        .map(|i| {
            let [b, c, y, xx] = unravel(i, out.shape())[..] else {
                unreachable!()
            };
            f64::from(x.data()[ravel(&[b, c, y / 2, xx / 2], x.shape())])
        })
        .collect();
    assert_close("Resize x2", &out, &[1, 2, 6, 8], &expected);

    // Downscale 5 -> 2 with half_pixel: x_in = (x + 0.5) * 2.5 - 0.5 = 0.75, 3.25 -> 1, 3.
    let row = Tensor::new(vec![1, 5], vec![10.0, 11.0, 12.0, 13.0, 14.0]).unwrap();
    let out = cpu::resize_nearest(
        &row,
        &[1, 2],
        None,
        CoordinateTransform::HalfPixel,
        NearestRounding::RoundPreferFloor,
    )
    .unwrap();
    assert_eq!(out.data(), [11.0, 13.0]);
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let mut rng = StdRng::seed_from_u64(5);
    let pairs: [(&[usize], &[usize]); 5] = [
        (&[2, 3, 4], &[2, 3, 4]),
        (&[2, 3, 4], &[4]),
        (&[2, 1, 4], &[3, 1]),
        (&[1], &[2, 5]),
        (&[1, 84, 8400], &[1, 1, 8400]),
    ];
    for (sa, sb) in pairs {
        let (a, b) = (random_tensor(&mut rng, sa), random_tensor(&mut rng, sb));
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
            let out = cpu::binary(op, &a, &b).unwrap();
            let shape = out.shape().to_vec();
            // Independent definition: index each operand modulo its own (right-aligned) dims.
            let pick = |t: &Tensor, index: &[usize]| {
                let lead = index.len() - t.shape().len();
                let own: Vec<usize> = t
                    .shape()
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| index[lead + i] % d)
                    .collect();
                f64::from(t.data()[ravel(&own, t.shape())])
            };
            let expected: Vec<f64> = (0..out.len())
                .map(|i| {
                    let index = unravel(i, &shape);
                    let (x, y) = (pick(&a, &index), pick(&b, &index));
                    match op {
                        BinaryOp::Add => x + y,
                        BinaryOp::Sub => x - y,
                        BinaryOp::Mul => x * y,
                        BinaryOp::Div => x / y,
                        // Integer ops: checked against their definitions in conformance.rs.
                        other => unreachable!("{other:?} is not among the float ops here"),
                    }
                })
                .collect();
            assert_close(&format!("{op:?} {sa:?} {sb:?}"), &out, &shape, &expected);
        }
    }
    let err = cpu::binary(
        BinaryOp::Add,
        &Tensor::zeros(vec![2, 3]),
        &Tensor::zeros(vec![4]),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Add: shapes [2, 3] and [4] do not broadcast"
    );
}

#[test]
fn softmax_matches_the_definition_on_every_axis() {
    let mut rng = StdRng::seed_from_u64(9);
    let x = random_tensor(&mut rng, &[2, 16, 4, 5]);
    for axis in [-1i64, 0, 1, 2] {
        let out = cpu::softmax(&x, axis).unwrap();
        let a = if axis < 0 { 3 } else { axis as usize };
        let expected: Vec<f64> = (0..x.len())
            .map(|i| {
                let index = unravel(i, x.shape());
                let sum: f64 = (0..x.shape()[a])
                    .map(|k| {
                        let mut j = index.clone();
                        j[a] = k;
                        f64::from(x.data()[ravel(&j, x.shape())]).exp()
                    })
                    .sum();
                f64::from(x.data()[i]).exp() / sum
            })
            .collect();
        assert_close(&format!("Softmax axis {axis}"), &out, x.shape(), &expected);
    }
}

#[test]
fn matmul_matches_the_definition_with_batch_broadcasting() {
    let mut rng = StdRng::seed_from_u64(13);
    let cases: [(&[usize], &[usize], &[usize]); 5] = [
        (&[5, 7], &[7, 3], &[5, 3]),
        (&[2, 4, 5, 7], &[2, 4, 7, 6], &[2, 4, 5, 6]),
        (&[3, 1, 5, 7], &[4, 7, 2], &[3, 4, 5, 2]),
        (&[7], &[2, 7, 3], &[2, 3]),
        (&[4, 7], &[7], &[4]),
    ];
    for (sa, sb, so) in cases {
        let (a, b) = (random_tensor(&mut rng, sa), random_tensor(&mut rng, sb));
        let out = cpu::matmul(&a, &b).unwrap();
        // Promote 1-D operands, then index each batch axis modulo the operand's own size.
        let pa: Vec<usize> = if sa.len() == 1 {
            vec![1, sa[0]]
        } else {
            sa.to_vec()
        };
        let pb: Vec<usize> = if sb.len() == 1 {
            vec![sb[0], 1]
        } else {
            sb.to_vec()
        };
        let (m, k, n) = (pa[pa.len() - 2], pa[pa.len() - 1], pb[pb.len() - 1]);
        let batch_rank = pa.len().max(pb.len()) - 2;
        let batch: Vec<usize> = (0..batch_rank)
            .map(|i| {
                let dim = |s: &[usize]| {
                    let lead = batch_rank - (s.len() - 2);
                    if i < lead { 1 } else { s[i - lead] }
                };
                dim(&pa).max(dim(&pb))
            })
            .collect();
        let at = |t: &Tensor, p: &[usize], bi: &[usize], r: usize, c: usize| {
            let lead = batch_rank - (p.len() - 2);
            let mut index: Vec<usize> = (0..p.len() - 2).map(|i| bi[lead + i] % p[i]).collect();
            index.extend([r, c]);
            f64::from(t.data()[ravel(&index, p)])
        };
        let batches: usize = batch.iter().product();
        let mut expected = Vec::new();
        for bflat in 0..batches {
            let bi = unravel(bflat, &batch);
            for r in 0..m {
                for c in 0..n {
                    expected.push(
                        (0..k)
                            .map(|p| at(&a, &pa, &bi, r, p) * at(&b, &pb, &bi, p, c))
                            .sum(),
                    );
                }
            }
        }
        assert_close(&format!("MatMul {sa:?} {sb:?}"), &out, so, &expected);
    }
}

#[test]
fn transpose_moves_every_element_to_its_permuted_index() {
    let mut rng = StdRng::seed_from_u64(17);
    let x = random_tensor(&mut rng, &[2, 3, 4, 5]);
    let perm = [0, 2, 3, 1];
    let out = cpu::transpose(&x, &perm).unwrap();
    assert_eq!(out.shape(), [2, 4, 5, 3]);
    for i in 0..x.len() {
        let index = unravel(i, x.shape());
        let moved: Vec<usize> = perm.iter().map(|&p| index[p]).collect();
        assert_eq!(out.data()[ravel(&moved, out.shape())], x.data()[i]);
    }
    assert_eq!(cpu::transpose(&x, &[]).unwrap().shape(), [5, 4, 3, 2]);
    assert!(cpu::transpose(&x, &[0, 1, 1, 2]).is_err());
}

#[test]
fn split_then_concat_gives_back_the_input() {
    let mut rng = StdRng::seed_from_u64(19);
    let x = random_tensor(&mut rng, &[1, 64, 6, 5]);
    for axis in [1i64, 2, -1] {
        let a = if axis < 0 { 3 } else { axis as usize };
        let len = x.shape()[a];
        let sizes = [len / 2, len - len / 2];
        let parts = cpu::split(&x, axis, &sizes).unwrap();
        assert_eq!(parts[0].shape()[a], sizes[0]);
        // The first part holds exactly the first `sizes[0]` positions along the axis.
        for i in 0..parts[0].len() {
            let index = unravel(i, parts[0].shape());
            assert_eq!(parts[0].data()[i], x.data()[ravel(&index, x.shape())]);
        }
        let back = cpu::concat(&parts.iter().collect::<Vec<_>>(), axis).unwrap();
        assert_eq!(back, x);
    }
    assert!(cpu::split(&x, 1, &[10, 10]).is_err());
    assert!(cpu::concat(&[&x, &Tensor::zeros(vec![1, 64, 6, 4])], 1).is_err());
}

#[test]
fn slice_follows_the_onnx_rules_for_negative_and_clamped_bounds() {
    let x = Tensor::new(vec![2, 6], (0..12).map(|v| v as f32).collect()).unwrap();
    let s = |starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]| {
        cpu::slice(&x, starts, ends, Some(axes), Some(steps)).unwrap()
    };
    assert_eq!(
        s(&[1], &[4], &[1], &[1]).data(),
        [1.0, 2.0, 3.0, 7.0, 8.0, 9.0]
    );
    assert_eq!(
        s(&[-2], &[i64::MAX], &[-1], &[1]).data(),
        [4.0, 5.0, 10.0, 11.0]
    );
    assert_eq!(
        s(&[5], &[0], &[1], &[-2]).data(),
        [5.0, 3.0, 1.0, 11.0, 9.0, 7.0]
    );
    assert_eq!(s(&[-1], &[i64::MIN], &[1], &[-1]).shape(), [2, 6]);
    assert_eq!(s(&[1, 0], &[2, 2], &[0, 1], &[1, 1]).data(), [6.0, 7.0]);
    assert_eq!(s(&[4], &[2], &[1], &[1]).shape(), [2, 0]);
    assert!(cpu::slice(&x, &[0], &[1], Some(&[1]), Some(&[0])).is_err());
}

#[test]
fn gather_picks_slices_with_negative_indices_and_rejects_out_of_range() {
    let x = Tensor::new(vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let out = cpu::gather(&x, 0, &[2, -3, 1, 1], &[2, 2]).unwrap();
    assert_eq!(out.shape(), [2, 2, 2]);
    assert_eq!(out.data(), [5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
    let column = cpu::gather(&x, 1, &[1], &[]).unwrap();
    assert_eq!(
        (column.shape(), column.data()),
        (&[3][..], &[2.0, 4.0, 6.0][..])
    );
    let err = cpu::gather(&x, 0, &[3], &[1]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Gather: index 3 is out of range for axis 0 of size 3"
    );
}

#[test]
fn reshape_targets_copy_zeros_and_infer_one_axis() {
    assert_eq!(
        cpu::reshape_target(&[1, 64, 8400], &[1, 4, 16, -1], false).unwrap(),
        [1, 4, 16, 8400]
    );
    assert_eq!(
        cpu::reshape_target(&[2, 3, 4], &[0, -1], false).unwrap(),
        [2, 12]
    );
    // allowzero: 0 is a literal size, so an empty tensor may take another empty shape.
    assert_eq!(cpu::reshape_target(&[2, 0], &[0, 5], true).unwrap(), [0, 5]);
    assert_eq!(
        cpu::reshape_target(&[2, 3], &[0, 3], false).unwrap(),
        [2, 3]
    );
    assert_eq!(
        cpu::reshape_target(&[2, 3], &[0, 3], true).unwrap_err().op,
        "Reshape"
    );
    assert!(cpu::reshape_target(&[2, 3], &[-1, -1], false).is_err());
    assert!(cpu::reshape_target(&[2, 3], &[4, -1], false).is_err());
}
