//! Registration of `sw.js`, which caches the app so the kiosk starts with no network.

use wasm_bindgen_futures::JsFuture;

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
