//! The page's handle on the detection worker.

use super::{FromWorker, ToWorker};
use std::{cell::RefCell, rc::Rc};
use wasm_bindgen::{JsCast, prelude::*};
use web_sys::{ErrorEvent, ImageBitmap, MessageEvent, Worker};

/// The loader trunk writes for the `detection-worker` binary (workers keep unhashed names).
const WORKER_SCRIPT: &str = "./detection-worker_loader.js";

/// The same worker built with threads (shared memory, xtask), a module worker: only a
/// cross-origin-isolated page may share memory with workers.
const THREADED_WORKER_SCRIPT: &str = "./detection-worker-threads_loader.js";

fn start_worker() -> Result<Worker, JsValue> {
    if super::cross_origin_isolated() {
        let options = web_sys::WorkerOptions::new();
        options.set_type(web_sys::WorkerType::Module);
        Worker::new_with_options(THREADED_WORKER_SCRIPT, &options)
    } else {
        Worker::new(WORKER_SCRIPT)
    }
}

/// Messages (with their transfer lists) waiting for the worker to start; `None` once it has.
type Queue = Rc<RefCell<Option<Vec<(js_sys::Array, js_sys::Array)>>>>;

pub struct DetectionWorker {
    worker: Worker,
    queue: Queue,
    _on_message: Closure<dyn Fn(MessageEvent)>,
    _on_error: Closure<dyn Fn(ErrorEvent)>,
}

impl DetectionWorker {
    /// A worker that posts its replies to `on_reply`, and an uncaught error (a panic in its
    /// wasm, after which its state cannot be trusted) to `on_crash`.
    pub fn spawn(
        on_reply: impl Fn(FromWorker) + 'static,
        on_crash: impl Fn(String) + 'static,
    ) -> Result<Self, String> {
        let worker = start_worker().map_err(|e| format!("{e:?}"))?;
        let queue: Queue = Rc::new(RefCell::new(Some(Vec::new())));
        let on_message = {
            let (worker, queue) = (worker.clone(), queue.clone());
            Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
                let reply = serde_wasm_bindgen::from_value(event.data()).unwrap_or_else(|e| {
                    FromWorker::Failed {
                        reason: format!("unreadable reply from the detector: {e}"),
                    }
                });
                if reply == FromWorker::Started {
                    for (data, transfer) in queue.borrow_mut().take().into_iter().flatten() {
                        let _ = worker.post_message_with_transfer(&data, &transfer);
                    }
                } else {
                    on_reply(reply)
                }
            })
        };
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let on_error =
            Closure::<dyn Fn(ErrorEvent)>::new(move |event: ErrorEvent| on_crash(event.message()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            queue,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    pub fn send(&self, message: &ToWorker) -> Result<(), String> {
        self.post(message, None)
    }

    /// Hands `frame` over to the worker (transferred: it is unusable here afterwards).
    pub fn detect(&self, frame_id: u64, frame: ImageBitmap) -> Result<(), String> {
        self.post(&ToWorker::Detect { frame_id }, Some(frame))
    }

    fn post(&self, message: &ToWorker, frame: Option<ImageBitmap>) -> Result<(), String> {
        let encoded = serde_wasm_bindgen::to_value(message).map_err(|e| e.to_string())?;
        let data = js_sys::Array::of1(&encoded);
        let transfer = js_sys::Array::new();
        if let Some(frame) = frame {
            data.push(&frame);
            transfer.push(&frame);
        }
        if let Some(waiting) = self.queue.borrow_mut().as_mut() {
            waiting.push((data, transfer));
            return Ok(());
        }
        self.worker
            .post_message_with_transfer(&data, &transfer)
            .map_err(|e| format!("{e:?}"))
    }
}

impl Drop for DetectionWorker {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
