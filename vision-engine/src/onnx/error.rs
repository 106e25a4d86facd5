use std::fmt;

/// Why ONNX bytes could not be read. Messages name the field path from the model root, e.g.
/// `graph.initializer[3] "w": raw_data has 10 bytes, expected 12 for FLOAT [3]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnnxError {
    /// The bytes are not an ONNX model at all (empty, an image, a PyTorch checkpoint, text...).
    NotOnnx(String),
    /// An ONNX model that is damaged or breaks the format's rules.
    Invalid { path: String, message: String },
    /// A well-formed model that uses something this reader does not support.
    Unsupported { path: String, message: String },
}

impl OnnxError {
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        OnnxError::Invalid {
            path: String::new(),
            message: message.into(),
        }
    }

    pub(super) fn unsupported(message: impl Into<String>) -> Self {
        OnnxError::Unsupported {
            path: String::new(),
            message: message.into(),
        }
    }

    /// Puts the error under `segment` (a field of the enclosing message), building the path
    /// from the leaf up as the error travels out of the nested decoders.
    pub(super) fn within(mut self, segment: &str) -> Self {
        if let OnnxError::Invalid { path, .. } | OnnxError::Unsupported { path, .. } = &mut self {
            *path = if path.is_empty() {
                segment.to_owned()
            } else {
                format!("{segment}.{path}")
            };
        }
        self
    }

    /// The field path from the model root; `None` for [`OnnxError::NotOnnx`].
    pub fn path(&self) -> Option<&str> {
        match self {
            OnnxError::NotOnnx(_) => None,
            OnnxError::Invalid { path, .. } | OnnxError::Unsupported { path, .. } => Some(path),
        }
    }
}

impl fmt::Display for OnnxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, kind, message) = match self {
            OnnxError::NotOnnx(why) => return write!(f, "not an ONNX model: {why}"),
            OnnxError::Invalid { path, message } => (path, "", message),
            OnnxError::Unsupported { path, message } => (path, "unsupported: ", message),
        };
        if path.is_empty() {
            write!(f, "{kind}{message}")
        } else {
            write!(f, "{path}: {kind}{message}")
        }
    }
}

impl std::error::Error for OnnxError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_grow_outwards_and_show_in_the_message() {
        let e = OnnxError::invalid("truncated length-delimited field")
            .within("attribute[2]")
            .within(r#"node[12] (Conv "model.0.conv")"#)
            .within("graph");
        assert_eq!(
            e.to_string(),
            r#"graph.node[12] (Conv "model.0.conv").attribute[2]: truncated length-delimited field"#
        );
        assert_eq!(
            e.path(),
            Some(r#"graph.node[12] (Conv "model.0.conv").attribute[2]"#)
        );
        let e = OnnxError::unsupported("external data").within(r#"initializer[0] "w""#);
        assert_eq!(
            e.to_string(),
            r#"initializer[0] "w": unsupported: external data"#
        );
        assert_eq!(OnnxError::invalid("x").to_string(), "x");
        let not = OnnxError::NotOnnx("the input is empty".into()).within("graph");
        assert_eq!(not.to_string(), "not an ONNX model: the input is empty");
        assert_eq!(not.path(), None);
    }
}
