//! From camera pixels to boxes: letterbox, the network, decoding and NMS, boxes in image pixels.

use crate::{
    EngineError, Tensor, end_to_end,
    graph::{Executor, LoadError, Network},
    letterbox::Letterbox,
    onnx,
    postprocess::{self, NmsOptions, OutputLayout, RawDetection},
};

/// One object found in an image, in the image's own pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class_id: u32,
    pub label: String,
    pub score: f32,
    /// `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
}

/// What one image gave: the detections and the letterbox they were found through.
#[derive(Debug, Clone)]
pub struct DetectionResult {
    pub detections: Vec<Detection>,
    pub letterbox: Letterbox,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error(transparent)]
    Onnx(#[from] onnx::OnnxError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("not a detector: {0}")]
    NotADetector(String),
    #[error("image: {0}")]
    Image(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// An Ultralytics-layout detector: one image input `[1, 3, H, W]`, first output `[1, 4 + C, N]`
/// (decoded with NMS) or end-to-end `[1, K, 6]` (boxes already chosen by the model).
#[derive(Debug, Clone)]
pub struct Detector {
    network: Network,
    /// The model's class names; where it names none, `class i` for each of an anchors output's
    /// classes, and none for an end-to-end output (which does not say how many there are).
    labels: Vec<String>,
    layout: OutputLayout,
}

impl Detector {
    pub fn from_onnx_bytes(bytes: &[u8]) -> Result<Self, DetectorError> {
        let model = onnx::parse_model(bytes)?;
        Self::new(Network::from_onnx(&model)?)
    }

    pub fn new(network: Network) -> Result<Self, DetectorError> {
        let Some((name, shape)) = network.outputs.first() else {
            return Err(DetectorError::NotADetector(
                "the model has no output".into(),
            ));
        };
        let &[1, rows, anchors] = shape.as_slice() else {
            return Err(DetectorError::NotADetector(format!(
                "output \"{name}\" has shape {shape:?}, expected [1, 4 + classes, anchors] or [1, K, 6]"
            )));
        };
        // Ultralytics tells the layouts apart the same way; a `[1, 4 + C, N]` head has at least
        // 21 anchors (strides 8, 16 and 32 of the smallest input, 32x32).
        if anchors == end_to_end::ROW {
            let labels = network.class_names.clone().unwrap_or_default();
            let classes = (!labels.is_empty()).then_some(labels.len());
            return Ok(Self {
                labels,
                network,
                layout: OutputLayout::EndToEnd { rows, classes },
            });
        }
        if rows < 5 {
            return Err(DetectorError::NotADetector(format!(
                "output \"{name}\" has {rows} rows: no classes"
            )));
        }
        let classes = rows - 4;
        let labels = match &network.class_names {
            Some(names) if names.len() == classes => names.clone(),
            Some(names) => {
                return Err(DetectorError::NotADetector(format!(
                    "the metadata names {} classes, the output has {classes}",
                    names.len()
                )));
            }
            None => (0..classes).map(|i| format!("class {i}")).collect(),
        };
        Ok(Self {
            network,
            labels,
            layout: OutputLayout::Anchors { classes, anchors },
        })
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The model's input size, `(width, height)`.
    pub fn input_size(&self) -> (u32, u32) {
        (
            self.network.input_shape[3] as u32,
            self.network.input_shape[2] as u32,
        )
    }

    /// The letterbox of an RGBA image into this detector's input, after checking the buffer.
    fn letterbox_for(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
    ) -> Result<Letterbox, DetectorError> {
        if width == 0 || height == 0 || rgba.len() != width as usize * height as usize * 4 {
            return Err(DetectorError::Image(format!(
                "{} bytes is not a {width}x{height} RGBA image",
                rgba.len()
            )));
        }
        let (in_w, in_h) = self.input_size();
        Ok(Letterbox::new(width, height, in_w, in_h))
    }

    /// Runs the whole pipeline on an RGBA image; `executor` runs this detector's network. On
    /// a GPU executor only the kept boxes come back from the GPU.
    pub async fn detect(
        &self,
        executor: &impl Executor,
        rgba: &[u8],
        width: u32,
        height: u32,
        options: NmsOptions,
    ) -> Result<DetectionResult, DetectorError> {
        Ok(self
            .run(executor, rgba, width, height, options, false)
            .await?
            .0)
    }

    /// [`Detector::detect`], also reading back the network's raw first output (for checks
    /// against other runtimes, `detect --raw-out`).
    pub async fn detect_with_raw_output(
        &self,
        executor: &impl Executor,
        rgba: &[u8],
        width: u32,
        height: u32,
        options: NmsOptions,
    ) -> Result<(DetectionResult, Tensor), DetectorError> {
        let (result, raw) = self
            .run(executor, rgba, width, height, options, true)
            .await?;
        let raw = raw
            .ok_or_else(|| DetectorError::NotADetector("the executor kept no raw output".into()))?;
        Ok((result, raw))
    }

    async fn run(
        &self,
        executor: &impl Executor,
        rgba: &[u8],
        width: u32,
        height: u32,
        options: NmsOptions,
        keep_raw: bool,
    ) -> Result<(DetectionResult, Option<Tensor>), DetectorError> {
        let letterbox = self.letterbox_for(rgba, width, height)?;
        let (raw_detections, raw_output) = executor
            .detect_rgba(rgba, &letterbox, self.layout, options, keep_raw)
            .await?;
        let detections = self.in_image_pixels(raw_detections, &letterbox);
        Ok((
            DetectionResult {
                detections,
                letterbox,
            },
            raw_output,
        ))
    }

    /// Decoding, NMS and mapping back to image pixels on the host, for a raw output from any
    /// runtime.
    pub fn decode(
        &self,
        raw_output: &Tensor,
        letterbox: &Letterbox,
        options: NmsOptions,
    ) -> Result<Vec<Detection>, DetectorError> {
        let raw = postprocess::decode_and_nms(raw_output.data(), self.layout, options)
            .map_err(|e| DetectorError::NotADetector(e.to_string()))?;
        Ok(self.in_image_pixels(raw, letterbox))
    }

    /// Labels the detections and maps their boxes from model-input to image pixels.
    fn in_image_pixels(&self, raw: Vec<RawDetection>, letterbox: &Letterbox) -> Vec<Detection> {
        raw.into_iter()
            .map(|d| Detection {
                class_id: d.class_id,
                label: self
                    .labels
                    .get(d.class_id as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("class {}", d.class_id)),
                score: d.score,
                bbox: letterbox.to_source(d.bbox),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::letterbox;

    fn detector() -> Detector {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/detector/mini_detector.onnx"
        ))
        .unwrap();
        Detector::from_onnx_bytes(&bytes).unwrap()
    }

    #[test]
    fn an_image_of_the_input_size_is_copied_exactly_and_a_wide_one_gets_grey_bands() {
        let d = detector();
        let rgba: Vec<u8> = (0..64 * 64 * 4).map(|i| (i % 251) as u8).collect();
        let lb = d.letterbox_for(&rgba, 64, 64).unwrap();
        let t = letterbox::to_input(&rgba, &lb);
        assert_eq!((lb.pad_left, lb.pad_top), (0, 0));
        assert_eq!(
            t.data()[64 * 64 + 5],
            f32::from(rgba[5 * 4 + 1]) / 255.0,
            "green plane, pixel 5"
        );

        let wide = vec![200u8; 128 * 64 * 4];
        let lb = d.letterbox_for(&wide, 128, 64).unwrap();
        let t = letterbox::to_input(&wide, &lb);
        assert_eq!(
            (lb.resized_width, lb.resized_height, lb.pad_top),
            (64, 32, 16)
        );
        assert_eq!(t.data()[0], 114.0 / 255.0, "top band");
        assert_eq!(t.data()[20 * 64 + 10], 200.0 / 255.0, "inside the image");
    }

    #[test]
    fn a_buffer_of_the_wrong_size_is_an_error() {
        let err = detector().letterbox_for(&[0; 10], 4, 4).unwrap_err();
        assert_eq!(err.to_string(), "image: 10 bytes is not a 4x4 RGBA image");
    }

    #[test]
    fn labels_come_from_the_model_metadata() {
        assert_eq!(detector().labels(), ["scratch", "dent", "crack"]);
    }
}
