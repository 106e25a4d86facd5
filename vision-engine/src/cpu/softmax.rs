use crate::tensor::{ShapeError, Tensor, normalize_axis};

/// ONNX `Softmax` (opset 13+) along `axis`, subtracting the maximum for stability.
pub fn softmax(input: &Tensor, axis: i64) -> Result<Tensor, ShapeError> {
    let shape = input.shape();
    let axis = normalize_axis("Softmax", axis, shape.len())?;
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let mut output = input.clone();
    let data = output.data_mut();
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let max = (0..len)
                .map(|k| data[at(k)])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for k in 0..len {
                let e = (data[at(k)] - max).exp();
                data[at(k)] = e;
                sum += e;
            }
            for k in 0..len {
                data[at(k)] /= sum;
            }
        }
    }
    Ok(output)
}
