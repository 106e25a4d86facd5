//! Marking a defect the model missed: the supervisor drags a box on the snapshot with any pointer
//! (mouse, pen or touch, through Pointer Events), picks its class from the model's labels and
//! saves it as a `CorrectionAction::MissedDefect` in the snapshot's pixels.

use super::{corrections::send_correction, texts::ReviewTexts};
use protocol::{BoundingBox, Correction, CorrectionAction};
use uuid::Uuid;
use web_sys::{Element, PointerEvent};
use yew::prelude::*;

/// A point on the screen (client pixels) in the pixels of an `image` (width, height) that is
/// shown scaled to fit and centred in `rect` (left, top, width, height), as the box layers show
/// it (`preserveAspectRatio="xMidYMid meet"`, `object-fit: contain`); clamped to the image.
pub fn to_image_pixels(rect: [f64; 4], image: (u32, u32), client: (f64, f64)) -> (f32, f32) {
    let (width, height) = (f64::from(image.0), f64::from(image.1));
    let scale = (rect[2] / width).min(rect[3] / height);
    // A layer not laid out (or NaN): nothing on it maps anywhere.
    if scale.is_nan() || scale <= 0.0 {
        return (0.0, 0.0);
    }
    let left = rect[0] + (rect[2] - width * scale) / 2.0;
    let top = rect[1] + (rect[3] - height * scale) / 2.0;
    let x = ((client.0 - left) / scale).clamp(0.0, width);
    let y = ((client.1 - top) / scale).clamp(0.0, height);
    (x as f32, y as f32)
}

/// The box with corners `a` and `b`, or `None` when a side is shorter than the least a defect
/// box may be on an image of `image`'s size: 1% of its shorter side, at least 4 pixels, so a
/// tap or a slip is not taken for a box.
pub fn drawn_box(a: (f32, f32), b: (f32, f32), image: (u32, u32)) -> Option<BoundingBox> {
    let least = (image.0.min(image.1) as f32 / 100.0).max(4.0);
    let bbox = BoundingBox {
        x1: a.0.min(b.0),
        y1: a.1.min(b.1),
        x2: a.0.max(b.0),
        y2: a.1.max(b.1),
    };
    (bbox.x2 - bbox.x1 >= least && bbox.y2 - bbox.y1 >= least).then_some(bbox)
}

/// Where a pointer event is, in the pixels of the image `layer` shows. `clientX`/`clientY` are
/// read as the fractional numbers Pointer Events deliver (`MouseEvent::client_x` rounds them).
fn image_point(layer: &NodeRef, e: &PointerEvent, image: (u32, u32)) -> Option<(f32, f32)> {
    let rect = layer.cast::<Element>()?.get_bounding_client_rect();
    let coordinate = |name: &str, rounded: i32| {
        js_sys::Reflect::get(e, &name.into())
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::from(rounded))
    };
    let client = (
        coordinate("clientX", e.client_x()),
        coordinate("clientY", e.client_y()),
    );
    Some(to_image_pixels(
        [rect.left(), rect.top(), rect.width(), rect.height()],
        image,
        client,
    ))
}

#[derive(Properties, PartialEq)]
pub struct DrawLayerProps {
    /// The snapshot's size in pixels.
    pub width: u32,
    pub height: u32,
    /// The box drawn last, shown until it is saved or cancelled.
    pub drawn: Option<BoundingBox>,
    /// A finished drag: its box, or `None` when it was too small.
    pub on_drawn: Callback<Option<BoundingBox>>,
}

/// A drag in progress: the pointer that started it and its two corners in image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Drag {
    pointer: i32,
    start: (f32, f32),
    end: (f32, f32),
}

/// The layer over the snapshot that takes the drag; the rectangle follows the pointer.
#[function_component(DrawLayer)]
pub fn draw_layer(props: &DrawLayerProps) -> Html {
    let image = (props.width, props.height);
    // The layer itself (Yew delegates events, so an event's `current_target` is not it).
    let layer = use_node_ref();
    // Read by every pointer event as it is now (events can come faster than renders).
    let drag = use_mut_ref(|| None::<Drag>);
    let redraw = use_force_update();
    let onpointerdown = {
        let (drag, layer, redraw) = (drag.clone(), layer.clone(), redraw.clone());
        Callback::from(move |e: PointerEvent| {
            if !e.is_primary() || e.button() != 0 {
                return;
            }
            e.prevent_default();
            if let Some(element) = layer.cast::<Element>() {
                // Moves outside the layer still belong to this drag; the point is clamped.
                let _ = element.set_pointer_capture(e.pointer_id());
            }
            if let Some(start) = image_point(&layer, &e, image) {
                *drag.borrow_mut() = Some(Drag {
                    pointer: e.pointer_id(),
                    start,
                    end: start,
                });
                redraw.force_update();
            }
        })
    };
    let onpointermove = {
        let (drag, layer, redraw) = (drag.clone(), layer.clone(), redraw.clone());
        Callback::from(move |e: PointerEvent| {
            let mut drag = drag.borrow_mut();
            let Some(current) = drag.as_mut().filter(|d| d.pointer == e.pointer_id()) else {
                return;
            };
            if let Some(end) = image_point(&layer, &e, image) {
                current.end = end;
                redraw.force_update();
            }
        })
    };
    let onpointerup = {
        let (drag, layer, on_drawn) = (drag.clone(), layer.clone(), props.on_drawn.clone());
        Callback::from(move |e: PointerEvent| {
            let finished = drag.borrow().filter(|d| d.pointer == e.pointer_id());
            let Some(current) = finished else {
                return;
            };
            let end = image_point(&layer, &e, image).unwrap_or(current.end);
            *drag.borrow_mut() = None;
            on_drawn.emit(drawn_box(current.start, end, image));
        })
    };
    let onpointercancel = {
        let (drag, redraw) = (drag.clone(), redraw.clone());
        Callback::from(move |_: PointerEvent| {
            *drag.borrow_mut() = None;
            redraw.force_update();
        })
    };
    let dragging = *drag.borrow();
    let shown = match dragging {
        Some(d) => Some(BoundingBox {
            x1: d.start.0.min(d.end.0),
            y1: d.start.1.min(d.end.1),
            x2: d.start.0.max(d.end.0),
            y2: d.start.1.max(d.end.1),
        }),
        None => props.drawn,
    };
    let stroke = f64::from(props.width.max(props.height)) / 250.0;
    html! {
        <svg class="draw-layer" ref={layer} viewBox={format!("0 0 {} {}", props.width, props.height)}
            preserveAspectRatio="xMidYMid meet" data-dragging={dragging.is_some().to_string()}
            {onpointerdown} {onpointermove} {onpointerup} {onpointercancel}>
            <rect class="draw-area" x="0" y="0" width={props.width.to_string()}
                height={props.height.to_string()} fill="transparent" />
            if let Some(b) = shown {
                <rect class="draft-box" x={b.x1.to_string()} y={b.y1.to_string()}
                    width={(b.x2 - b.x1).to_string()} height={(b.y2 - b.y1).to_string()}
                    data-box={format!("{} {} {} {}", b.x1, b.y1, b.x2, b.y2)}
                    fill="rgba(255, 255, 255, 0.15)" stroke="#fff" stroke-width={stroke.to_string()}
                    stroke-dasharray={format!("{} {}", stroke * 2.0, stroke * 2.0)} />
            }
        </svg>
    }
}

#[derive(Properties, PartialEq)]
pub struct MissedDefectFormProps {
    pub texts: &'static ReviewTexts,
    pub inspection: Uuid,
    /// What the supervisor drew; `None` until a box is drawn.
    pub drawn: Option<BoundingBox>,
    /// Whether the last drag was too small to be a box.
    pub too_small: bool,
    /// The classes the box may be: `(class_id, label)`, the model's.
    pub classes: Vec<(u32, String)>,
    pub on_saved: Callback<Correction>,
    pub on_cancel: Callback<()>,
}

/// Below the snapshot while marking: what to do, then the class, Save and Cancel.
#[function_component(MissedDefectForm)]
pub fn missed_defect_form(props: &MissedDefectFormProps) -> Html {
    let t = props.texts;
    // The class picked; the first of the list until one is.
    let class = use_state(|| None::<u32>);
    let problem = use_state(|| None::<String>);
    let saving = use_state(|| false);
    let on_class = {
        let class = class.clone();
        Callback::from(move |e: Event| {
            let value = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            class.set(value.parse().ok());
        })
    };
    let picked = match *class {
        Some(id) => props.classes.iter().find(|(c, _)| *c == id).cloned(),
        None => props.classes.first().cloned(),
    };
    let picked_id = picked.as_ref().map(|(id, _)| *id);
    let on_save = {
        let (problem, saving, on_saved) = (problem.clone(), saving.clone(), props.on_saved.clone());
        let (inspection, drawn, picked) = (props.inspection, props.drawn, picked.clone());
        Callback::from(move |_: MouseEvent| {
            let (Some(bbox), Some((class_id, label))) = (drawn, picked.clone()) else {
                return;
            };
            let (problem, saving, on_saved) = (problem.clone(), saving.clone(), on_saved.clone());
            saving.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                let action = CorrectionAction::MissedDefect {
                    class_id,
                    label,
                    bbox,
                };
                let sent = send_correction(inspection, &action).await;
                saving.set(false);
                match sent {
                    Ok(correction) => on_saved.emit(correction),
                    Err(e) => problem.set(Some(e.to_string())),
                }
            });
        })
    };
    let on_cancel = {
        let on_cancel = props.on_cancel.clone();
        Callback::from(move |_: MouseEvent| on_cancel.emit(()))
    };
    let hint = if props.too_small {
        t.box_too_small
    } else {
        t.draw_hint
    };
    html! {
        <div class="missed-defect-form">
            if props.drawn.is_none() {
                <p id="missed-hint" class={if props.too_small { "error" } else { "muted" }}>{ hint }</p>
            } else {
                <label class="filter">
                    <span>{ t.defect_class }</span>
                    <select id="missed-class" onchange={on_class}>
                        { for props.classes.iter().map(|(id, label)| html! {
                            <option value={id.to_string()} selected={picked_id == Some(*id)}>{ label }</option>
                        }) }
                    </select>
                </label>
                <button id="missed-save" onclick={on_save} disabled={*saving || picked.is_none()}>{ t.save }</button>
            }
            <button id="missed-cancel" class="quiet" onclick={on_cancel}>{ t.cancel }</button>
            if let Some(problem) = &*problem { <p class="error">{ problem }</p> }
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn screen_points_map_to_image_pixels_at_any_displayed_size() {
        // 640x480 shown at half size from (100, 50): exact, whatever the scale.
        let rect = [100.0, 50.0, 320.0, 240.0];
        assert_eq!(to_image_pixels(rect, (640, 480), (100.0, 50.0)), (0.0, 0.0));
        assert_eq!(
            to_image_pixels(rect, (640, 480), (260.5, 110.25)),
            (321.0, 120.5)
        );
        // A wider layer letterboxes the image in its middle: 320 px of margin each side.
        let wide = [0.0, 0.0, 1280.0, 480.0];
        assert_eq!(
            to_image_pixels(wide, (640, 480), (330.0, 10.0)),
            (10.0, 10.0)
        );
        // Outside the image: clamped to its edges.
        assert_eq!(
            to_image_pixels(wide, (640, 480), (5.0, 900.0)),
            (0.0, 480.0)
        );
        assert_eq!(
            to_image_pixels([0.0; 4], (640, 480), (5.0, 5.0)),
            (0.0, 0.0)
        );
    }

    #[wasm_bindgen_test]
    fn a_box_is_ordered_and_too_small_ones_are_refused() {
        let b = drawn_box((50.0, 80.0), (10.0, 20.0), (640, 480)).unwrap();
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (10.0, 20.0, 50.0, 80.0));
        // 1% of 480 is 4.8 pixels.
        assert_eq!(drawn_box((10.0, 10.0), (14.0, 60.0), (640, 480)), None);
        assert!(drawn_box((10.0, 10.0), (15.0, 60.0), (640, 480)).is_some());
        assert_eq!(drawn_box((10.0, 10.0), (10.0, 10.0), (64, 48)), None);
    }
}
