//! NumPy `.npy` files of little-endian f32 in C order: what ONNX Runtime reference outputs are
//! stored as, and what `detect --raw-out` writes.

use crate::{ShapeError, Tensor, tensor::shape_error};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Encodes a tensor as a version 1.0 `.npy` file.
pub fn write(tensor: &Tensor) -> Vec<u8> {
    let dims: Vec<String> = tensor.shape().iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic, version and length take 10 bytes; the header ends in '\n' and pads the whole to 64.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + tensor.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in tensor.data() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn npy_error(reason: impl Into<String>) -> ShapeError {
    shape_error("npy", reason)
}

/// Decodes a `.npy` file of little-endian f32 in C order (versions 1 to 3).
pub fn read(bytes: &[u8]) -> Result<Tensor, ShapeError> {
    if !bytes.starts_with(MAGIC) || bytes.len() < 10 {
        return Err(npy_error("not a .npy file"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(npy_error(format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| npy_error("truncated header"))?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(npy_error(format!(
            "only little-endian f32 in C order is read, header is {header}"
        )));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| npy_error("the header has no shape"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<usize>()
                .map_err(|_| npy_error(format!("bad dimension {d:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (words, _) = bytes[start + header_len..].as_chunks::<4>();
    let data: Vec<f32> = words.iter().map(|&w| f32::from_le_bytes(w)).collect();
    Tensor::new(shape, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tensor_survives_write_and_read_with_an_aligned_header() {
        let t = Tensor::new(
            vec![1, 7, 3],
            (0..21).map(|v| v as f32 * 0.5 - 3.0).collect(),
        )
        .unwrap();
        let bytes = write(&t);
        assert_eq!((bytes.len() - 21 * 4) % 64, 0);
        assert_eq!(read(&bytes).unwrap(), t);
        let vector = Tensor::new(vec![2], vec![1.0, 2.0]).unwrap();
        assert_eq!(read(&write(&vector)).unwrap(), vector);
    }

    #[test]
    fn other_files_are_refused_with_a_reason() {
        assert!(
            read(b"PK\x03\x04")
                .unwrap_err()
                .to_string()
                .contains("not a .npy file")
        );
        let f32_file = write(&Tensor::new(vec![1], vec![1.0]).unwrap());
        let at = f32_file.windows(3).position(|w| w == b"<f4").unwrap();
        let mut f64_file = f32_file.clone();
        f64_file[at..at + 3].copy_from_slice(b"<f8");
        let err = read(&f64_file).unwrap_err().to_string();
        assert!(err.contains("only little-endian f32"), "{err}");
    }
}
