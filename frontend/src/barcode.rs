//! Part serials from barcodes in the camera picture, where the browser has `BarcodeDetector`
//! (Chrome on Android and ChromeOS, Safari); elsewhere the operator types or uses a wedge scanner.

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::HtmlVideoElement;

fn constructor() -> Option<js_sys::Function> {
    js_sys::Reflect::get(&js_sys::global(), &"BarcodeDetector".into())
        .ok()?
        .dyn_into()
        .ok()
}

pub fn available() -> bool {
    constructor().is_some()
}

/// The first barcode's text in the video's current frame, if any.
pub async fn scan(video: &HtmlVideoElement) -> Result<Option<String>, String> {
    let constructor = constructor().ok_or("this browser cannot read barcodes")?;
    let detector = js_sys::Reflect::construct(&constructor, &js_sys::Array::new())
        .map_err(|e| format!("{e:?}"))?;
    let detect: js_sys::Function = js_sys::Reflect::get(&detector, &"detect".into())
        .and_then(JsValue::dyn_into)
        .map_err(|e| format!("{e:?}"))?;
    let found = detect
        .call1(&detector, video)
        .map_err(|e| format!("{e:?}"))?;
    let codes = JsFuture::from(found.unchecked_into::<js_sys::Promise>())
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(js_sys::Array::from(&codes).iter().find_map(|code| {
        js_sys::Reflect::get(&code, &"rawValue".into())
            .ok()?
            .as_string()
    }))
}
