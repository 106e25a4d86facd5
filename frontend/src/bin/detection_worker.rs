//! The detection worker: vision-engine off the page's thread (see `detection::worker`).

use wasm_bindgen::prelude::*;

fn main() {
    linecheck_frontend::detection::worker::run();
}

/// Makes this worker one of the CPU backend's threads for its life. Called, in the threaded
/// build, by the workers `detection::worker` starts (public/detection-worker-threads_loader.js).
#[wasm_bindgen]
pub fn serve_cpu_thread() {
    vision_engine::cpu::serve_as_worker()
}
