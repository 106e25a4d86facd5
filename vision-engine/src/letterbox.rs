//! Letterbox geometry, identical to Ultralytics' `LetterBox(auto=False, center=True)` and
//! `scale_boxes`, so boxes from our engine land on the same pixels as Ultralytics' own; and the
//! letterboxing of RGBA pixels into a network input.

use crate::Tensor;

/// Grey used by Ultralytics for the padding bands.
pub const PAD_VALUE: u8 = 114;

/// How a source image is scaled and padded into the model's input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub source_width: u32,
    pub source_height: u32,
    pub input_width: u32,
    pub input_height: u32,
    /// Scale from source pixels to input pixels (same on both axes).
    pub scale: f64,
    /// Size of the scaled image inside the input.
    pub resized_width: u32,
    pub resized_height: u32,
    pub pad_left: u32,
    pub pad_top: u32,
}

/// Python's `round`, which rounds halves to even.
fn py_round(x: f64) -> f64 {
    x.round_ties_even()
}

impl Letterbox {
    pub fn new(source_width: u32, source_height: u32, input_width: u32, input_height: u32) -> Self {
        let (sw, sh) = (f64::from(source_width), f64::from(source_height));
        let (iw, ih) = (f64::from(input_width), f64::from(input_height));
        let scale = (iw / sw).min(ih / sh);
        let resized_width = py_round(sw * scale) as u32;
        let resized_height = py_round(sh * scale) as u32;
        let dw = f64::from(input_width - resized_width) / 2.0;
        let dh = f64::from(input_height - resized_height) / 2.0;
        Self {
            source_width,
            source_height,
            input_width,
            input_height,
            scale,
            resized_width,
            resized_height,
            pad_left: py_round(dw - 0.1) as u32,
            pad_top: py_round(dh - 0.1) as u32,
        }
    }

    /// Maps a box `[x1, y1, x2, y2]` from input pixels back to source pixels, clipped to the
    /// source image, as Ultralytics' `scale_boxes` does.
    pub fn to_source(&self, [x1, y1, x2, y2]: [f32; 4]) -> [f32; 4] {
        // scale_boxes recomputes the padding from the gain rather than reusing the letterbox's.
        let pad_x = py_round(
            (f64::from(self.input_width) - f64::from(self.source_width) * self.scale) / 2.0 - 0.1,
        );
        let pad_y = py_round(
            (f64::from(self.input_height) - f64::from(self.source_height) * self.scale) / 2.0 - 0.1,
        );
        let map = |v: f32, pad: f64, limit: u32| {
            (((f64::from(v) - pad) / self.scale).clamp(0.0, f64::from(limit))) as f32
        };
        [
            map(x1, pad_x, self.source_width),
            map(y1, pad_y, self.source_height),
            map(x2, pad_x, self.source_width),
            map(y2, pad_y, self.source_height),
        ]
    }
}

/// Letterboxes an RGBA image (`letterbox.source_width` x `source_height`, 4 bytes a pixel) into
/// an NCHW f32 network input: aspect kept, grey (114) bands, bilinear sampling with pixel centres
/// aligned as OpenCV's `INTER_LINEAR`, values scaled to 0..1. An image of the resized size is
/// copied exactly. The GPU kernel `letterbox.wgsl` computes the same.
pub fn to_input(rgba: &[u8], letterbox: &Letterbox) -> Tensor {
    let lb = letterbox;
    let (w, h) = (lb.input_width as usize, lb.input_height as usize);
    let (sw, sh) = (lb.source_width as usize, lb.source_height as usize);
    assert_eq!(rgba.len(), sw * sh * 4, "checked by the caller");
    let mut data = vec![f32::from(PAD_VALUE) / 255.0; 3 * w * h];
    let pixel = |x: usize, y: usize, c: usize| f32::from(rgba[(y * sw + x) * 4 + c]);
    // Source coordinate of a destination pixel centre, and its two neighbours with weights.
    let taps = |dst: usize, len: usize| {
        let src = ((dst as f64 + 0.5) / lb.scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(len - 1);
        let i1 = (i0 + 1).min(len - 1);
        (i0, i1, (src - i0 as f64).min(1.0) as f32)
    };
    let same_size = lb.resized_width == lb.source_width && lb.resized_height == lb.source_height;
    for y in 0..lb.resized_height as usize {
        let (y0, y1, fy) = if same_size { (y, y, 0.0) } else { taps(y, sh) };
        for x in 0..lb.resized_width as usize {
            let (x0, x1, fx) = if same_size { (x, x, 0.0) } else { taps(x, sw) };
            let at = (y + lb.pad_top as usize) * w + x + lb.pad_left as usize;
            for c in 0..3 {
                let top = pixel(x0, y0, c) * (1.0 - fx) + pixel(x1, y0, c) * fx;
                let bottom = pixel(x0, y1, c) * (1.0 - fx) + pixel(x1, y1, c) * fx;
                data[c * w * h + at] = (top * (1.0 - fy) + bottom * fy) / 255.0;
            }
        }
    }
    Tensor::new(vec![1, 3, h, w], data).expect("sized above")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landscape_frame_is_scaled_to_width_and_padded_top_and_bottom() {
        // 1280x720 into 640x640: scale 0.5, 640x360 image, 140 px bands above and below.
        let lb = Letterbox::new(1280, 720, 640, 640);
        assert_eq!(lb.scale, 0.5);
        assert_eq!((lb.resized_width, lb.resized_height), (640, 360));
        assert_eq!((lb.pad_left, lb.pad_top), (0, 140));
    }

    #[test]
    fn odd_padding_puts_the_extra_pixel_at_the_bottom_like_ultralytics() {
        // 640x481 into 640x640: 159 px of padding; top = round(79.5 - 0.1) = 79.
        let lb = Letterbox::new(640, 481, 640, 640);
        assert_eq!(lb.resized_height, 481);
        assert_eq!(lb.pad_top, 79);
    }

    #[test]
    fn boxes_map_back_to_source_pixels_and_are_clipped() {
        let lb = Letterbox::new(1280, 720, 640, 640);
        assert_eq!(
            lb.to_source([10.0, 150.0, 110.0, 250.0]),
            [20.0, 20.0, 220.0, 220.0]
        );
        assert_eq!(
            lb.to_source([-5.0, 100.0, 700.0, 600.0]),
            [0.0, 0.0, 1280.0, 720.0]
        );
    }
}
