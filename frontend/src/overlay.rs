//! Detection boxes drawn as SVG over an image or the live video. The SVG's view box is the
//! frame's pixel size and it is laid out like the picture under it (`object-fit: contain`), so
//! boxes in frame pixels land on the right spot at any screen size.

use protocol::{BoundingBox, CorrectedDetections, Detection, InspectionRecord, Reviewed};
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
    /// The supervisors' corrections applied: each detection drawn as they left it, and the
    /// defects they added.
    #[prop_or_default]
    pub corrected: Option<CorrectedDetections>,
}

/// Distinct, high-contrast colours, one per class id.
const CLASS_COLOURS: [&str; 8] = [
    "#ff4d4d", "#ffd166", "#4dd2ff", "#ff66d9", "#66ff8c", "#ff9f43", "#b18cff", "#ffffff",
];
const DELETED_COLOUR: &str = "#9a9a9a";

fn class_colour(class_id: u32) -> &'static str {
    CLASS_COLOURS[class_id as usize % CLASS_COLOURS.len()]
}

/// How one box is drawn.
struct BoxLook<'a> {
    /// CSS classes besides `box`.
    kind: &'static str,
    label: &'a str,
    text: String,
    colour: &'static str,
    dashed: bool,
}

#[function_component(BoxOverlay)]
pub fn box_overlay(props: &BoxOverlayProps) -> Html {
    let stroke = f64::from(props.width.max(props.height)) / 250.0;
    let font = stroke * 7.0;
    let draw = |b: BoundingBox, look: BoxLook| {
        html! {
            <g class={format!("box {}", look.kind)} data-label={look.label.to_string()}>
                <rect x={b.x1.to_string()} y={b.y1.to_string()}
                    width={(b.x2 - b.x1).to_string()} height={(b.y2 - b.y1).to_string()}
                    fill="none" stroke={look.colour} stroke-width={stroke.to_string()}
                    stroke-dasharray={if look.dashed { format!("{} {}", stroke * 3.0, stroke * 2.0) } else { "none".to_string() }} />
                <text x={b.x1.to_string()} y={(f64::from(b.y1) - stroke).max(font).to_string()}
                    fill={look.colour} font-size={font.to_string()} font-weight="700"
                    stroke="#000" stroke-width={(stroke / 3.0).to_string()} paint-order="stroke">
                    { look.text }
                </text>
            </g>
        }
    };
    let reviewed = |i: usize| {
        props
            .corrected
            .as_ref()
            .and_then(|c| c.detections.get(i))
            .unwrap_or(&Reviewed::Unreviewed)
    };
    let added = props.corrected.as_ref().map_or(&[][..], |c| &c.added[..]);
    html! {
        <svg class="boxes" viewBox={format!("0 0 {} {}", props.width, props.height)}
            preserveAspectRatio="xMidYMid meet" data-boxes={props.detections.len().to_string()}
            data-added={added.len().to_string()}>
            { for props.detections.iter().zip(&props.thresholds).enumerate().map(|(i, (d, &threshold))| {
                let score = format!("{:.0}%", d.score * 100.0);
                let fails = d.score >= threshold;
                let look = match reviewed(i) {
                    Reviewed::Unreviewed => BoxLook {
                        kind: if fails { "fails" } else { "below" },
                        label: &d.label,
                        text: format!("{} {score}", d.label),
                        colour: class_colour(d.class_id),
                        dashed: !fails,
                    },
                    Reviewed::Confirmed => BoxLook {
                        kind: "fails confirmed",
                        label: &d.label,
                        text: format!("✓ {} {score}", d.label),
                        colour: class_colour(d.class_id),
                        dashed: false,
                    },
                    Reviewed::Relabelled { class_id, label } => BoxLook {
                        kind: "fails relabelled",
                        label,
                        text: format!("{label} ← {}", d.label),
                        colour: class_colour(*class_id),
                        dashed: false,
                    },
                    Reviewed::Deleted => BoxLook {
                        kind: "deleted",
                        label: &d.label,
                        text: format!("✗ {}", d.label),
                        colour: DELETED_COLOUR,
                        dashed: true,
                    },
                };
                draw(d.bbox, look)
            }) }
            { for added.iter().map(|a| draw(a.bbox, BoxLook {
                kind: "fails added",
                label: &a.label,
                text: format!("+ {}", a.label),
                colour: class_colour(a.class_id),
                dashed: false,
            })) }
        </svg>
    }
}

/// Each of the record's detections' class threshold, as the station judged them.
pub fn thresholds_of(record: &InspectionRecord) -> Vec<f32> {
    record
        .detections
        .iter()
        .map(|d| protocol::threshold_for(&record.thresholds, record.default_threshold, d.class_id))
        .collect()
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

#[derive(Properties, PartialEq)]
pub struct SnapshotViewProps {
    pub url: String,
    pub detections: Vec<Detection>,
    /// Each detection's class threshold, as `BoxOverlay` takes them.
    pub thresholds: Vec<f32>,
    /// As `BoxOverlay` takes it.
    #[prop_or_default]
    pub corrected: Option<CorrectedDetections>,
    /// A layer above the boxes, given the image's size in pixels (the review's box drawing).
    #[prop_or_default]
    pub layer: Option<Callback<(u32, u32), Html>>,
}

/// A stored snapshot (any image URL) with its boxes; the boxes wait for the image's size.
#[function_component(SnapshotView)]
pub fn snapshot_view(props: &SnapshotViewProps) -> Html {
    let size = use_state(|| None::<(u32, u32)>);
    let onload = {
        let size = size.clone();
        Callback::from(move |e: Event| {
            let img = e.target_unchecked_into::<web_sys::HtmlImageElement>();
            size.set(Some((img.natural_width(), img.natural_height())));
        })
    };
    html! {
        <div class="picture" style={size.map(|(w, h)| format!("aspect-ratio: {w} / {h}"))}>
            <img class="history-snapshot" src={props.url.clone()} alt="" {onload} />
            if let Some((width, height)) = *size {
                <BoxOverlay detections={props.detections.clone()} {width} {height}
                    thresholds={props.thresholds.clone()} corrected={props.corrected.clone()} />
                if let Some(layer) = &props.layer { { layer.emit((width, height)) } }
            }
        </div>
    }
}
