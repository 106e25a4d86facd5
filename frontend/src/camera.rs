//! The station camera: a `getUserMedia` stream playing in a `<video>` element that lives as long
//! as the page, so switching screens never restarts the camera.

use futures::future::{Either, select};
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Event, HtmlVideoElement, MediaDeviceInfo, MediaDeviceKind, MediaStream, MediaStreamTrack,
    MediaStreamTrackState,
};

/// A camera the browser lists (labels appear once camera permission was granted).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraDevice {
    pub id: String,
    pub label: String,
}

fn media_devices() -> Result<web_sys::MediaDevices, String> {
    web_sys::window()
        .ok_or("no window")?
        .navigator()
        .media_devices()
        .map_err(|_| "this browser gives no camera access here: open LineCheck over HTTPS".into())
}

pub async fn list() -> Result<Vec<CameraDevice>, String> {
    let devices = JsFuture::from(media_devices()?.enumerate_devices().map_err(js_error)?)
        .await
        .map_err(js_error)?;
    Ok(js_sys::Array::from(&devices)
        .iter()
        .map(|d| d.unchecked_into::<MediaDeviceInfo>())
        .filter(|d| d.kind() == MediaDeviceKind::Videoinput)
        .map(|d| CameraDevice {
            id: d.device_id(),
            label: d.label(),
        })
        .collect())
}

fn js_error(e: wasm_bindgen::JsValue) -> String {
    js_sys::Reflect::get(&e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Video constraints: the chosen camera, else the rear one; the resolution as an ideal, so a
/// camera without it still starts.
fn constraints(camera_id: Option<&str>, (width, height): (u32, u32)) -> js_sys::Object {
    let video = js_sys::Object::new();
    let set = |object: &js_sys::Object, key: &str, value: wasm_bindgen::JsValue| {
        let _ = js_sys::Reflect::set(object, &key.into(), &value);
    };
    let ideal = |value: wasm_bindgen::JsValue| {
        let object = js_sys::Object::new();
        set(&object, "ideal", value);
        object.into()
    };
    match camera_id {
        Some(id) => {
            let exact = js_sys::Object::new();
            set(&exact, "exact", id.into());
            set(&video, "deviceId", exact.into());
        }
        None => set(&video, "facingMode", ideal("environment".into())),
    }
    set(&video, "width", ideal(width.into()));
    set(&video, "height", ideal(height.into()));
    let all = js_sys::Object::new();
    set(&all, "video", video.into());
    set(&all, "audio", false.into());
    all
}

/// How long a camera may take to start before it counts as failed (a driver that never answers
/// would otherwise hold the live view for ever).
const START_TIMEOUT_MS: u32 = 15_000;

/// Starts the camera and plays it in a new muted, inline `<video>`; an error if it does not
/// within [`START_TIMEOUT_MS`] (a late camera is closed when it comes).
pub async fn open(
    camera_id: Option<&str>,
    resolution: (u32, u32),
) -> Result<HtmlVideoElement, String> {
    let starting = Box::pin(start(camera_id.map(str::to_string), resolution));
    match select(starting, TimeoutFuture::new(START_TIMEOUT_MS)).await {
        Either::Left((started, _)) => started,
        Either::Right(((), late)) => {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(video) = late.await {
                    close(&video);
                }
            });
            Err(format!(
                "it did not start within {} s",
                START_TIMEOUT_MS / 1000
            ))
        }
    }
}

async fn start(
    camera_id: Option<String>,
    resolution: (u32, u32),
) -> Result<HtmlVideoElement, String> {
    let request = media_devices()?
        .get_user_media_with_constraints(
            constraints(camera_id.as_deref(), resolution).unchecked_ref(),
        )
        .map_err(js_error)?;
    let stream: MediaStream = JsFuture::from(request)
        .await
        .map_err(js_error)?
        .unchecked_into();
    let video: HtmlVideoElement = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?
        .create_element("video")
        .map_err(js_error)?
        .unchecked_into();
    video.set_muted(true);
    video.set_autoplay(true);
    video.set_attribute("playsinline", "").map_err(js_error)?;
    video.set_id("camera");
    video.set_src_object(Some(&stream));
    JsFuture::from(video.play().map_err(js_error)?)
        .await
        .map_err(js_error)?;
    Ok(video)
}

fn tracks(video: &HtmlVideoElement) -> Vec<MediaStreamTrack> {
    video
        .src_object()
        .and_then(|s| s.dyn_into::<MediaStream>().ok())
        .map(|stream| {
            stream
                .get_tracks()
                .iter()
                .map(|t| t.unchecked_into::<MediaStreamTrack>())
                .collect()
        })
        .unwrap_or_default()
}

/// Resolves once the camera behind `video` stops: unplugged, taken by the system, or [`close`]d.
pub async fn ended(video: &HtmlVideoElement) {
    let tracks = tracks(video);
    let stopped = js_sys::Promise::new(&mut |resolve, _| {
        for track in &tracks {
            track.set_onended(Some(&resolve));
        }
    });
    let live = |t: &MediaStreamTrack| t.ready_state() == MediaStreamTrackState::Live;
    if !tracks.is_empty() && tracks.iter().all(live) {
        let _ = JsFuture::from(stopped).await;
    }
}

/// Stops the camera behind `video` (before opening another).
pub fn close(video: &HtmlVideoElement) {
    for track in tracks(video) {
        track.stop();
        // `stop` fires no `ended`: wake whoever waits in [`ended`].
        if let Ok(event) = Event::new("ended") {
            let _ = track.dispatch_event(&event);
        }
    }
    video.remove();
}
