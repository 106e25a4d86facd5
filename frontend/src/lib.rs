//! The LineCheck kiosk: a Yew progressive web app (`main.rs`) and its detection worker
//! (`bin/detection_worker.rs`), two wasm binaries over this one library.

mod app;
mod barcode;
mod camera;
pub mod detection;
mod gpu_check;
mod history;
mod i18n;
mod inspect;
mod live;
mod overlay;
mod pull;
mod quota;
mod records;
mod service_worker;
mod setup;
mod sound;
mod storage;
mod sync;
mod sync_status;
mod wake_lock;

use std::rc::Rc;

/// Shares one long-lived object (database, detection loop) with components, which compare
/// props: two handles are equal when they are the same object.
pub struct Shared<T>(pub Rc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// Starts the kiosk's page.
pub fn run_app() {
    yew::Renderer::<app::App>::new().render();
}
