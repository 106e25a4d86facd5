//! The LineCheck kiosk, a Yew progressive web app.

mod app;
mod gpu_check;
mod model;
mod service_worker;
mod storage;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
