//! Registration of `sw.js`, which caches the app so the kiosk starts with no network.

use wasm_bindgen::{JsCast, prelude::*};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ServiceWorkerRegistration, ServiceWorkerState};

#[derive(Debug, Clone, PartialEq)]
pub enum ServiceWorkerStatus {
    Registering,
    /// The worker is active; `controlled` says whether it already serves this page.
    Active {
        controlled: bool,
    },
    Unsupported,
    Failed(String),
}

pub async fn register() -> ServiceWorkerStatus {
    let Some(window) = web_sys::window() else {
        return ServiceWorkerStatus::Unsupported;
    };
    let navigator = window.navigator();
    // Absent on plain http from another host: browsers require a secure context.
    if !js_sys::Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false) {
        return ServiceWorkerStatus::Unsupported;
    }
    let container = navigator.service_worker();
    if let Err(e) = JsFuture::from(container.register("./sw.js")).await {
        return ServiceWorkerStatus::Failed(format!("{e:?}"));
    }
    let ready = match container.ready() {
        Ok(ready) => JsFuture::from(ready).await,
        Err(e) => Err(e),
    };
    if let Err(e) = ready {
        return ServiceWorkerStatus::Failed(format!("{e:?}"));
    }
    if container.controller().is_none() {
        // A first version claims the open page as it activates: wait for that, briefly.
        let claimed = js_sys::Promise::new(&mut |resolve, _reject| {
            let _ = container.add_event_listener_with_callback("controllerchange", &resolve);
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 3000);
        });
        let _ = JsFuture::from(claimed).await;
    }
    ServiceWorkerStatus::Active {
        controlled: container.controller().is_some(),
    }
}

/// How often a kiosk that never navigates asks the server for a new build.
const UPDATE_CHECK_MS: u32 = 15 * 60 * 1000;

/// This page's registration, if service workers exist here and one is registered.
async fn registration_of(window: &web_sys::Window) -> Option<ServiceWorkerRegistration> {
    let navigator = window.navigator();
    if !js_sys::Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false) {
        return None;
    }
    let found = JsFuture::from(navigator.service_worker().get_registration())
        .await
        .ok()?;
    (!found.is_undefined()).then(|| found.unchecked_into())
}

/// Calls `on_ready` once a new build is installed and waiting, checking now and every
/// [`UPDATE_CHECK_MS`]. The page decides when to apply it: between parts.
pub async fn watch_for_update(on_ready: impl Fn() + 'static) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Some(registration) = registration_of(&window).await else {
        return;
    };
    let on_ready = std::rc::Rc::new(on_ready);
    // A page that was never controlled gets its first version, not an update.
    let has_controller = {
        let window = window.clone();
        move || window.navigator().service_worker().controller().is_some()
    };
    if registration.waiting().is_some() && has_controller() {
        on_ready();
    }
    let on_update_found = {
        let registration = registration.clone();
        Closure::<dyn Fn()>::new(move || {
            let Some(installing) = registration.installing() else {
                return;
            };
            let (on_ready, has_controller) = (on_ready.clone(), has_controller.clone());
            let worker = installing.clone();
            let on_state = Closure::<dyn Fn()>::new(move || {
                if worker.state() == ServiceWorkerState::Installed && has_controller() {
                    on_ready();
                }
            });
            installing.set_onstatechange(Some(on_state.as_ref().unchecked_ref()));
            on_state.forget();
        })
    };
    registration.set_onupdatefound(Some(on_update_found.as_ref().unchecked_ref()));
    on_update_found.forget();
    gloo_timers::callback::Interval::new(UPDATE_CHECK_MS, move || {
        let _ = registration.update();
    })
    .forget();
}

/// Activates the waiting build and reloads into it. Call only between parts: the reload drops
/// whatever is on screen (records are already stored by then).
pub async fn apply_update() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Some(waiting) = registration_of(&window)
        .await
        .and_then(|registration| registration.waiting())
    else {
        return;
    };
    let reload = Closure::<dyn Fn()>::new(move || {
        if let Some(w) = web_sys::window() {
            let _ = w.location().reload();
        }
    });
    window
        .navigator()
        .service_worker()
        .set_oncontrollerchange(Some(reload.as_ref().unchecked_ref()));
    reload.forget();
    let message = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&message, &"type".into(), &"apply-update".into());
    let _ = waiting.post_message(&message);
}
