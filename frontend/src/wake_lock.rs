//! Keeps the tablet's screen on while LineCheck is shown. Browsers release a wake lock whenever
//! the page is hidden, so it is requested again each time the page becomes visible.

use wasm_bindgen::{JsCast, prelude::*};

fn request() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let navigator = window.navigator();
    let Ok(wake_lock) = js_sys::Reflect::get(&navigator, &"wakeLock".into()) else {
        return;
    };
    if wake_lock.is_undefined() {
        return; // Not offered here (an old browser, or not a secure context).
    }
    let Ok(request) = js_sys::Reflect::get(&wake_lock, &"request".into())
        .and_then(|f| f.dyn_into::<js_sys::Function>())
    else {
        return;
    };
    if let Ok(promise) = request.call1(&wake_lock, &"screen".into()) {
        // Refused (battery saver, or no user gesture yet): nothing to do but try on next show.
        let ignore = Closure::<dyn FnMut(JsValue)>::new(|_| {});
        let _ = promise.unchecked_into::<js_sys::Promise>().catch(&ignore);
        ignore.forget();
    }
}

/// Requests the lock now and whenever the page is shown again.
pub fn keep_screen_on() {
    request();
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let on_visibility = Closure::<dyn Fn()>::new(|| {
        let visible = web_sys::window()
            .and_then(|w| w.document())
            .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
        if visible {
            request();
        }
    });
    let _ = document.add_event_listener_with_callback(
        "visibilitychange",
        on_visibility.as_ref().unchecked_ref(),
    );
    on_visibility.forget();
}
