//! Detection boxes drawn as SVG over an image or the live video. The SVG's view box is the
//! frame's pixel size and it is laid out like the picture under it (`object-fit: contain`), so
//! boxes in frame pixels land on the right spot at any screen size.

use protocol::Detection;
use wasm_bindgen::{JsCast, prelude::*};
use wasm_bindgen_futures::JsFuture;
use web_sys::{HtmlCanvasElement, ImageBitmap};
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct BoxOverlayProps {
    pub detections: Vec<Detection>,
    /// The frame's size in pixels.
    pub width: u32,
    pub height: u32,
    /// Each detection's class threshold: boxes at or above it fail the part and are drawn solid.
    pub thresholds: Vec<f32>,
}

/// Distinct, high-contrast colours, one per class id.
const CLASS_COLOURS: [&str; 8] = [
    "#ff4d4d", "#ffd166", "#4dd2ff", "#ff66d9", "#66ff8c", "#ff9f43", "#b18cff", "#ffffff",
];

#[function_component(BoxOverlay)]
pub fn box_overlay(props: &BoxOverlayProps) -> Html {
    let stroke = f64::from(props.width.max(props.height)) / 250.0;
    let font = stroke * 7.0;
    html! {
        <svg class="boxes" viewBox={format!("0 0 {} {}", props.width, props.height)}
            preserveAspectRatio="xMidYMid meet" data-boxes={props.detections.len().to_string()}>
            { for props.detections.iter().zip(&props.thresholds).map(|(d, &threshold)| {
                let colour = CLASS_COLOURS[d.class_id as usize % CLASS_COLOURS.len()];
                let fails = d.score >= threshold;
                let b = d.bbox;
                html! {
                    <g class={if fails { "box fails" } else { "box below" }} data-label={d.label.clone()}>
                        <rect x={b.x1.to_string()} y={b.y1.to_string()}
                            width={(b.x2 - b.x1).to_string()} height={(b.y2 - b.y1).to_string()}
                            fill="none" stroke={colour} stroke-width={stroke.to_string()}
                            stroke-dasharray={if fails { "none".to_string() } else { format!("{} {}", stroke * 3.0, stroke * 2.0) }} />
                        <text x={b.x1.to_string()} y={(f64::from(b.y1) - stroke).max(font).to_string()}
                            fill={colour} font-size={font.to_string()} font-weight="700"
                            stroke="#000" stroke-width={(stroke / 3.0).to_string()} paint-order="stroke">
                            { format!("{} {:.0}%", d.label, d.score * 100.0) }
                        </text>
                    </g>
                }
            }) }
        </svg>
    }
}

/// The frame as a JPEG: what an inspection stores and the server receives.
pub async fn jpeg_of(frame: &ImageBitmap) -> Result<Vec<u8>, String> {
    let canvas: HtmlCanvasElement = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?
        .create_element("canvas")
        .map_err(|e| format!("{e:?}"))?
        .unchecked_into();
    canvas.set_width(frame.width());
    canvas.set_height(frame.height());
    let context: web_sys::CanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(|e| format!("{e:?}"))?
        .ok_or("no 2D canvas")?
        .unchecked_into();
    context
        .draw_image_with_image_bitmap(frame, 0.0, 0.0)
        .map_err(|e| format!("{e:?}"))?;
    let blob = JsFuture::from(js_sys::Promise::new(&mut |resolve, reject| {
        let reject_encoding = reject.clone();
        let done = Closure::once_into_js(move |blob: JsValue| {
            let _ = if blob.is_null() {
                reject_encoding.call1(
                    &JsValue::NULL,
                    &"the browser could not encode a JPEG".into(),
                )
            } else {
                resolve.call1(&JsValue::NULL, &blob)
            };
        });
        if let Err(e) = canvas.to_blob_with_type_and_encoder_options(
            done.unchecked_ref(),
            "image/jpeg",
            &0.9.into(),
        ) {
            let _ = reject.call1(&JsValue::NULL, &e);
        }
    }))
    .await
    .map_err(|e| format!("encoding the snapshot: {e:?}"))?;
    let buffer = JsFuture::from(blob.unchecked_into::<web_sys::Blob>().array_buffer())
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// An object URL showing `jpeg` in an `<img>`; revoke it with `Url::revoke_object_url`.
pub fn object_url(jpeg: &[u8]) -> Result<String, String> {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(jpeg));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("image/jpeg");
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(|e| format!("{e:?}"))?;
    web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))
}
