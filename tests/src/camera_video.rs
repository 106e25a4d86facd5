//! The fake camera's video (made by `models/synth/video.py`) and its ground truth, so a test can
//! tell which frame a stored snapshot shows and which defects were really in it.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
pub struct TruthBox {
    pub part: u32,
    pub class: String,
    /// `[x1, y1, x2, y2]` in frame pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

#[derive(Debug, Clone, Deserialize)]
pub struct FrameTruth {
    pub frame: usize,
    pub still: bool,
    pub centred_part: Option<u32>,
    pub boxes: Vec<TruthBox>,
}

#[derive(Deserialize)]
struct Truth {
    width: usize,
    height: usize,
    frame_truth: Vec<FrameTruth>,
}

pub struct CameraVideo {
    pub path: PathBuf,
    pub width: usize,
    pub height: usize,
    /// Each frame's luma plane.
    luma: Vec<Vec<u8>>,
    pub truth: Vec<FrameTruth>,
}

impl CameraVideo {
    /// The video `cargo xtask test` generates, named by `LINECHECK_CAMERA_VIDEO`, with the ground
    /// truth written beside it (`parts.json`).
    pub fn load() -> anyhow::Result<Self> {
        let path = crate::required_path("LINECHECK_CAMERA_VIDEO");
        let truth: Truth = serde_json::from_slice(
            &std::fs::read(path.with_extension("json")).context("the video's ground truth")?,
        )?;
        let bytes = std::fs::read(&path)?;
        let header_end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .context("no y4m header")?;
        let (w, h) = (truth.width, truth.height);
        // I420: the luma plane, then two quarter-size chroma planes.
        let frame_len = w * h * 3 / 2;
        let mut luma = Vec::new();
        let mut at = header_end + 1;
        while at < bytes.len() {
            let Some(data) = bytes[at..].strip_prefix(b"FRAME\n") else {
                bail!("frame {} has no FRAME marker", luma.len());
            };
            luma.push(data[..w * h].to_vec());
            at += b"FRAME\n".len() + frame_len;
        }
        if luma.len() != truth.frame_truth.len() {
            bail!(
                "{} frames in the video, {} in its truth",
                luma.len(),
                truth.frame_truth.len()
            );
        }
        Ok(Self {
            path,
            width: w,
            height: h,
            luma,
            truth: truth.frame_truth,
        })
    }

    /// The frame a JPEG snapshot shows, and how alike they are: the frame whose luma correlates
    /// best with the snapshot's. Correlation, not a pixel difference, because the browser maps
    /// the camera's YUV to RGB in its own range before the JPEG is made.
    pub fn frame_of(&self, jpeg: &[u8]) -> anyhow::Result<(&FrameTruth, f64)> {
        let image = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)?.to_luma8();
        if (image.width() as usize, image.height() as usize) != (self.width, self.height) {
            bail!(
                "the snapshot is {}x{}, the camera video {}x{}",
                image.width(),
                image.height(),
                self.width,
                self.height
            );
        }
        let snapshot = image.as_raw();
        let (index, correlation) = self
            .luma
            .iter()
            .map(|frame| correlation(frame, snapshot))
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .context("an empty video")?;
        Ok((&self.truth[index], correlation))
    }
}

/// Pearson correlation of two equally long pixel rows.
fn correlation(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len() as f64;
    let mean = |v: &[u8]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(f64::MIN_POSITIVE)
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: [f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}
