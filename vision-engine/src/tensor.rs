//! A dense f32 tensor in row-major (C) order: the unit the CPU backend computes on.

/// Why a tensor or an op's arguments do not fit together; names the op and the shapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {reason}")]
pub struct ShapeError {
    pub op: &'static str,
    pub reason: String,
}

pub(crate) fn shape_error(op: &'static str, reason: impl Into<String>) -> ShapeError {
    ShapeError {
        op,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, ShapeError> {
        let len: usize = shape.iter().product();
        if len != data.len() {
            return Err(shape_error(
                "Tensor",
                format!("shape {shape:?} holds {len} values, got {}", data.len()),
            ));
        }
        Ok(Self { shape, data })
    }

    pub fn zeros(shape: Vec<usize>) -> Self {
        let len = shape.iter().product();
        Self {
            shape,
            data: vec![0.0; len],
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The values' storage, for reuse.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The same values under another shape with as many elements.
    pub fn reshaped(self, shape: Vec<usize>) -> Result<Self, ShapeError> {
        Self::new(shape, self.data)
    }
}

/// Row-major strides of `shape`, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Resolves a possibly negative ONNX axis against a rank.
pub fn normalize_axis(op: &'static str, axis: i64, rank: usize) -> Result<usize, ShapeError> {
    let rank_i = rank as i64;
    let resolved = if axis < 0 { axis + rank_i } else { axis };
    if (0..rank_i).contains(&resolved) {
        Ok(resolved as usize)
    } else {
        Err(shape_error(
            op,
            format!("axis {axis} is out of range for rank {rank}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_must_match_the_data() {
        assert!(Tensor::new(vec![2, 3], vec![0.0; 6]).is_ok());
        let err = Tensor::new(vec![2, 3], vec![0.0; 5]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Tensor: shape [2, 3] holds 6 values, got 5"
        );
    }

    #[test]
    fn strides_and_axes() {
        assert_eq!(strides(&[2, 3, 4]), [12, 4, 1]);
        assert_eq!(strides(&[]), [0usize; 0]);
        assert_eq!(normalize_axis("Concat", -1, 4), Ok(3));
        assert!(normalize_axis("Concat", 4, 4).is_err());
        assert!(normalize_axis("Concat", -5, 4).is_err());
    }
}
