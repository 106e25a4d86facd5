//! Letterbox geometry, identical to Ultralytics' `LetterBox(auto=False, center=True)` and
//! `scale_boxes`, so boxes from our engine land on the same pixels as Ultralytics' own.

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
