//! The LineCheck kiosk, a Yew progressive web app.

mod app;
mod gpu_check;
mod model;
mod quota;
// The inspection screens that save and list records land with the operator UI.
#[cfg_attr(not(test), allow(dead_code))]
mod records;
mod service_worker;
mod storage;
mod sync;
mod sync_status;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
