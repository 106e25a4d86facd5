//! The Protocol Buffers wire format, as far as ONNX needs it: tags, the four live wire types, and
//! packed or unpacked repeated scalars. Every length is checked against the bytes that are
//! actually there before anything is sliced or allocated, so a hostile length cannot cost memory.

use std::fmt;

/// A field's payload, still undecoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl Value<'_> {
    pub(super) fn wire_type_name(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "64-bit",
            Value::Bytes(_) => "length-delimited",
            Value::Fixed32(_) => "32-bit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WireError {
    TruncatedVarint,
    VarintTooLong,
    Truncated(&'static str),
    /// Field numbers run from 1 to 2^29 - 1.
    FieldNumber(u64),
    /// Groups (wire types 3 and 4) are deprecated and never used by ONNX; 6 and 7 do not exist.
    WireType(u8),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TruncatedVarint => f.write_str("truncated varint"),
            WireError::VarintTooLong => f.write_str("varint longer than 10 bytes"),
            WireError::Truncated(kind) => write!(f, "truncated {kind} field"),
            WireError::FieldNumber(n) => write!(f, "field number {n} is out of range"),
            WireError::WireType(t) => write!(f, "wire type {t}, which ONNX does not use"),
        }
    }
}

/// A wire error and, when the tag was read, the number of the field it happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FieldError {
    pub number: Option<u32>,
    pub error: WireError,
}

/// Reads a varint from the front of `buf`, advancing it.
pub(super) fn read_varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(if buf.len() >= 10 {
        WireError::VarintTooLong
    } else {
        WireError::TruncatedVarint
    })
}

/// The fields of one message, in file order.
pub(super) struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn read(&mut self) -> Result<(u32, Value<'a>), FieldError> {
        let at = |error| FieldError {
            number: None,
            error,
        };
        let tag = read_varint(&mut self.buf).map_err(at)?;
        let number = match u32::try_from(tag >> 3) {
            Ok(n @ 1..0x2000_0000) => n,
            _ => return Err(at(WireError::FieldNumber(tag >> 3))),
        };
        let within = |error| FieldError {
            number: Some(number),
            error,
        };
        let buf = &mut self.buf;
        let value = match tag & 7 {
            0 => Value::Varint(read_varint(buf).map_err(within)?),
            1 => {
                let (word, rest) = buf
                    .split_first_chunk::<8>()
                    .ok_or(within(WireError::Truncated("64-bit")))?;
                *buf = rest;
                Value::Fixed64(u64::from_le_bytes(*word))
            }
            2 => {
                let len = read_varint(buf).map_err(within)?;
                // A length beyond the buffer (or beyond usize) is truncation, never an allocation.
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if buf.len() < len {
                    return Err(within(WireError::Truncated("length-delimited")));
                }
                let (bytes, rest) = buf.split_at(len);
                *buf = rest;
                Value::Bytes(bytes)
            }
            5 => {
                let (word, rest) = buf
                    .split_first_chunk::<4>()
                    .ok_or(within(WireError::Truncated("32-bit")))?;
                *buf = rest;
                Value::Fixed32(u32::from_le_bytes(*word))
            }
            t => return Err(within(WireError::WireType(t as u8))),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), FieldError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let item = self.read();
        if item.is_err() {
            // Nothing after a broken field can be framed; stop rather than guess.
            self.buf = &[];
        }
        Some(item)
    }
}

/// Appends the elements of a repeated varint field, packed (one length-delimited run) or not.
pub(super) fn repeated_varint(value: Value<'_>, out: &mut Vec<u64>) -> Result<(), String> {
    match value {
        Value::Varint(v) => out.push(v),
        Value::Bytes(mut run) => {
            // Every varint ends in exactly one byte below 0x80: reserve once, exactly.
            out.reserve(run.iter().filter(|&&b| b < 0x80).count());
            while !run.is_empty() {
                out.push(read_varint(&mut run).map_err(|e| format!("packed run: {e}"))?);
            }
        }
        other => return Err(wire_type_mismatch(other, "varint")),
    }
    Ok(())
}

/// Appends the elements of a repeated 32-bit field (`float`, `fixed32`), packed or not.
pub(super) fn repeated_fixed32(value: Value<'_>, out: &mut Vec<u32>) -> Result<(), String> {
    match value {
        Value::Fixed32(v) => out.push(v),
        Value::Bytes(run) => {
            let (words, rest) = run.as_chunks::<4>();
            if !rest.is_empty() {
                return Err(format!(
                    "packed run of {} bytes is not a multiple of 4",
                    run.len()
                ));
            }
            out.extend(words.iter().map(|w| u32::from_le_bytes(*w)));
        }
        other => return Err(wire_type_mismatch(other, "32-bit")),
    }
    Ok(())
}

/// Appends the elements of a repeated 64-bit field (`double`, `fixed64`), packed or not.
pub(super) fn repeated_fixed64(value: Value<'_>, out: &mut Vec<u64>) -> Result<(), String> {
    match value {
        Value::Fixed64(v) => out.push(v),
        Value::Bytes(run) => {
            let (words, rest) = run.as_chunks::<8>();
            if !rest.is_empty() {
                return Err(format!(
                    "packed run of {} bytes is not a multiple of 8",
                    run.len()
                ));
            }
            out.extend(words.iter().map(|w| u64::from_le_bytes(*w)));
        }
        other => return Err(wire_type_mismatch(other, "64-bit")),
    }
    Ok(())
}

pub(super) fn wire_type_mismatch(found: Value<'_>, expected: &str) -> String {
    format!(
        "expected a {expected} field, found wire type {}",
        found.wire_type_name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Vec<Result<(u32, Value<'_>), FieldError>> {
        Fields::new(buf).collect()
    }

    #[test]
    fn varints_decode_like_protobuf() {
        for (bytes, want) in [
            (&[0x00][..], 0u64),
            (&[0x01], 1),
            (&[0x96, 0x01], 150),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], u64::from(u32::MAX)),
            // -1 as int64: ten bytes, the last carrying the top bit.
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                u64::MAX,
            ),
        ] {
            let mut buf = bytes;
            assert_eq!(read_varint(&mut buf), Ok(want), "{bytes:02x?}");
            assert!(buf.is_empty());
        }
        assert_eq!(
            read_varint(&mut &[0x80, 0x80][..]),
            Err(WireError::TruncatedVarint)
        );
        assert_eq!(
            read_varint(&mut &[0x80; 11][..]),
            Err(WireError::VarintTooLong)
        );
        assert_eq!(read_varint(&mut &[][..]), Err(WireError::TruncatedVarint));
    }

    #[test]
    fn all_four_wire_types_and_their_truncations() {
        let buf = [
            0x08, 0x96, 0x01, // field 1, varint 150
            0x11, 1, 2, 3, 4, 5, 6, 7, 8, // field 2, 64-bit
            0x1a, 0x03, b'a', b'b', b'c', // field 3, bytes "abc"
            0x25, 0x00, 0x00, 0x80, 0x3f, // field 4, 32-bit 1.0f32
        ];
        let got: Vec<_> = fields(&buf).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got,
            [
                (1, Value::Varint(150)),
                (2, Value::Fixed64(0x0807_0605_0403_0201)),
                (3, Value::Bytes(b"abc")),
                (4, Value::Fixed32(1.0f32.to_bits())),
            ]
        );
        let truncated = |bytes: &[u8], number, error| {
            assert_eq!(
                fields(bytes).last().copied(),
                Some(Err(FieldError { number, error })),
                "{bytes:02x?}"
            );
        };
        truncated(&[0x08], Some(1), WireError::TruncatedVarint);
        truncated(&[0x11, 1, 2, 3], Some(2), WireError::Truncated("64-bit"));
        truncated(
            &[0x1a, 0x04, b'a'],
            Some(3),
            WireError::Truncated("length-delimited"),
        );
        truncated(&[0x25, 0, 0], Some(4), WireError::Truncated("32-bit"));
        truncated(&[0x80], None, WireError::TruncatedVarint);
        truncated(&[0x00], None, WireError::FieldNumber(0));
        truncated(
            &[0x80, 0x80, 0x80, 0x80, 0x10],
            None,
            WireError::FieldNumber(1 << 29),
        );
        truncated(&[0x0b], Some(1), WireError::WireType(3));
        truncated(&[0x0e], Some(1), WireError::WireType(6));
        // A length of 2^63 must be reported, not allocated or overflowed.
        let mut huge = vec![0x1a];
        huge.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        truncated(&huge, Some(3), WireError::Truncated("length-delimited"));
    }

    #[test]
    fn unknown_fields_are_framed_and_iteration_stops_after_an_error() {
        // field 1000 (varint), then field 2 bytes; then garbage that must not be read past.
        let buf = [0xc0, 0x3e, 0x05, 0x12, 0x00, 0x80];
        let got = fields(&buf);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], Ok((1000, Value::Varint(5))));
        assert_eq!(got[1], Ok((2, Value::Bytes(&[]))));
        assert!(got[2].is_err());
    }

    #[test]
    fn repeated_scalars_accept_packed_and_unpacked_mixed() {
        let mut ints = Vec::new();
        repeated_varint(Value::Varint(7), &mut ints).unwrap();
        repeated_varint(Value::Bytes(&[0x01, 0x96, 0x01]), &mut ints).unwrap();
        assert_eq!(ints, [7, 1, 150]);
        assert!(repeated_varint(Value::Bytes(&[0x96]), &mut ints).is_err());
        assert!(repeated_varint(Value::Fixed32(0), &mut ints).is_err());

        let mut words = Vec::new();
        repeated_fixed32(Value::Fixed32(9), &mut words).unwrap();
        repeated_fixed32(Value::Bytes(&[1, 0, 0, 0, 2, 0, 0, 0]), &mut words).unwrap();
        assert_eq!(words, [9, 1, 2]);
        assert!(repeated_fixed32(Value::Bytes(&[1, 0, 0]), &mut words).is_err());

        let mut longs = Vec::new();
        repeated_fixed64(Value::Bytes(&[1, 0, 0, 0, 0, 0, 0, 0]), &mut longs).unwrap();
        repeated_fixed64(Value::Fixed64(3), &mut longs).unwrap();
        assert_eq!(longs, [1, 3]);
        assert!(repeated_fixed64(Value::Bytes(&[0; 12]), &mut longs).is_err());
        assert!(repeated_fixed64(Value::Varint(1), &mut longs).is_err());
    }
}
