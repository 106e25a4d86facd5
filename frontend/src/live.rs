//! The live detection loop: grab the camera's current frame, hand it to the detection worker,
//! keep the frame that was analysed beside its boxes, and grab the next one as soon as the
//! worker is free. One frame is in flight at a time, so a slow backend lowers the rate of boxes,
//! never the camera's.

use crate::detection::{FromWorker, ToWorker, client::DetectionWorker};
use protocol::Detection;
use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{HtmlVideoElement, ImageBitmap};

/// A frame and what the detector found in it: the pair an inspection records.
pub struct AnalyzedFrame {
    pub frame: ImageBitmap,
    pub detections: Vec<Detection>,
}

/// What the page draws of the latest analysed frame: its boxes, over the live video.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameView {
    pub detections: Vec<Detection>,
    pub width: u32,
    pub height: u32,
    pub stats: LoopStats,
}

/// Rolling figures for the status line (and the frame-rate benchmark).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoopStats {
    pub frames: u64,
    /// Detection results per second over the last results.
    pub rate_hz: f64,
    /// Camera frame grabbed → boxes back on the page.
    pub latency_ms: f64,
    /// Inside the worker only.
    pub infer_ms: f64,
}

struct InFlight {
    id: u64,
    /// A copy kept here, since the worker receives (and closes) the original.
    frame: ImageBitmap,
    grabbed_at: f64,
}

pub struct LiveLoop {
    worker: RefCell<Option<DetectionWorker>>,
    /// What the current worker was started with (its confidence kept current), to start it again
    /// after a crash.
    loaded: RefCell<Option<ToWorker>>,
    on_engine: Box<dyn Fn(FromWorker)>,
    on_frame: Box<dyn Fn(FrameView)>,
    video: RefCell<Option<HtmlVideoElement>>,
    in_flight: RefCell<Option<InFlight>>,
    /// The newest result, until the next replaces it (its frame closed then) or an inspection
    /// takes it.
    latest: RefCell<Option<AnalyzedFrame>>,
    next_id: Cell<u64>,
    recent_results: RefCell<Vec<f64>>,
    stats: Cell<LoopStats>,
    /// Frames are grabbed once the worker has a model and the page has a camera.
    engine_ready: Cell<bool>,
    grabbing: Cell<bool>,
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// `HAVE_CURRENT_DATA`: the element has a frame to copy.
const HAVE_CURRENT_DATA: u16 = 2;

impl LiveLoop {
    /// A loop with no detector yet; replies other than frame results go to `on_engine`, a view
    /// of each analysed frame to `on_frame`.
    pub fn new(
        on_engine: impl Fn(FromWorker) + 'static,
        on_frame: impl Fn(FrameView) + 'static,
    ) -> Rc<Self> {
        Rc::new(Self {
            worker: RefCell::new(None),
            loaded: RefCell::new(None),
            on_engine: Box::new(on_engine),
            on_frame: Box::new(on_frame),
            video: RefCell::new(None),
            in_flight: RefCell::new(None),
            latest: RefCell::new(None),
            next_id: Cell::new(0),
            recent_results: RefCell::new(Vec::new()),
            stats: Cell::new(LoopStats::default()),
            engine_ready: Cell::new(false),
            grabbing: Cell::new(false),
        })
    }

    /// Starts a fresh detection worker with `load` (a [`ToWorker::Load`]), ending the previous
    /// one: how the kiosk switches models. Frames resume once the new model is ready.
    pub fn load(self: &Rc<Self>, load: &ToWorker) -> Result<(), String> {
        self.engine_ready.set(false);
        self.in_flight.borrow_mut().take();
        let (weak, weak_too) = (Rc::downgrade(self), Rc::downgrade(self));
        let worker = DetectionWorker::spawn(
            move |reply| {
                if let Some(this) = weak.upgrade() {
                    this.on_reply(reply);
                }
            },
            move |error| {
                if let Some(this) = weak_too.upgrade() {
                    this.restart(error);
                }
            },
        )?;
        worker.send(load)?;
        // Dropping the old worker terminates it; its replies die with it.
        *self.worker.borrow_mut() = Some(worker);
        *self.loaded.borrow_mut() = Some(load.clone());
        Ok(())
    }

    /// A crashed worker is replaced by a fresh one with the same model: the live view says so
    /// and comes back, instead of waiting for ever on a frame that will not return.
    fn restart(self: &Rc<Self>, error: String) {
        (self.on_engine)(FromWorker::Failed {
            reason: format!("the detector stopped ({error}); restarting it"),
        });
        let load = self.loaded.borrow().clone();
        if let Some(load) = load
            && let Err(reason) = self.load(&load)
        {
            (self.on_engine)(FromWorker::Failed { reason });
        }
    }

    /// Sends `message` to the current worker.
    pub fn send(&self, message: &ToWorker) -> Result<(), String> {
        if let (
            ToWorker::SetConfidence { confidence },
            Some(ToWorker::Load {
                confidence: loaded_with,
                ..
            }),
        ) = (message, &mut *self.loaded.borrow_mut())
        {
            *loaded_with = *confidence;
        }
        match &*self.worker.borrow() {
            Some(worker) => worker.send(message),
            None => Err("no detector is loaded".into()),
        }
    }

    fn on_reply(self: &Rc<Self>, reply: FromWorker) {
        match reply {
            FromWorker::Detections {
                frame_id,
                detections,
                infer_ms,
            } => {
                if let Some(view) = self.finish(frame_id, detections, infer_ms) {
                    (self.on_frame)(view);
                }
                self.grab_next();
            }
            FromWorker::Failed { .. } if self.in_flight.borrow().is_some() => {
                // A frame failed: report it and try the next one after a pause.
                self.in_flight.borrow_mut().take();
                (self.on_engine)(reply);
                self.grab_later(1000);
            }
            FromWorker::Ready(_) => {
                self.engine_ready.set(true);
                self.start_grabbing();
                (self.on_engine)(reply);
            }
            other => (self.on_engine)(other),
        }
    }

    /// Starts (or restarts, after a camera change) grabbing frames from `video`.
    pub fn start(self: &Rc<Self>, video: HtmlVideoElement) {
        *self.video.borrow_mut() = Some(video);
        self.start_grabbing();
    }

    fn start_grabbing(self: &Rc<Self>) {
        if self.engine_ready.get() && self.video.borrow().is_some() && !self.grabbing.replace(true)
        {
            self.grab_next();
        }
    }

    /// Stops grabbing from a camera that is gone. Its last analysed frame goes too: no inspection
    /// may record a picture the camera no longer shows.
    pub fn lose_camera(&self) {
        self.video.borrow_mut().take();
        if let Some(in_flight) = self.in_flight.borrow_mut().take() {
            in_flight.frame.close();
        }
        if let Some(stale) = self.latest.borrow_mut().take() {
            stale.frame.close();
        }
    }

    pub fn video(&self) -> Option<HtmlVideoElement> {
        self.video.borrow().clone()
    }

    fn grab_later(self: &Rc<Self>, delay_ms: u32) {
        let this = self.clone();
        gloo_timers::callback::Timeout::new(delay_ms, move || this.grab_next()).forget();
    }

    fn grab_next(self: &Rc<Self>) {
        let Some(video) = self.video().filter(|_| self.engine_ready.get()) else {
            // Resumed by the next `Ready`, or by `start` with a camera.
            self.grabbing.set(false);
            return;
        };
        // Leaving the Inspect screen takes the video out of the page, which pauses it: it must
        // play on, or every later frame is the one it stopped at.
        if video.paused() {
            let _ = video.play();
        }
        if video.ready_state() < HAVE_CURRENT_DATA || video.video_width() == 0 {
            self.grab_later(100);
            return;
        }
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match this.send_frame(&video).await {
                Ok(()) => {}
                Err(e) => {
                    web_sys::console::warn_1(&format!("frame not sent: {e}").into());
                    this.grab_later(500);
                }
            }
        });
    }

    async fn send_frame(&self, video: &HtmlVideoElement) -> Result<(), String> {
        let window = web_sys::window().ok_or("no window")?;
        let grabbed_at = now_ms();
        let bitmap = |promise: Result<js_sys::Promise, wasm_bindgen::JsValue>| async {
            let value = JsFuture::from(promise.map_err(|e| format!("{e:?}"))?)
                .await
                .map_err(|e| format!("{e:?}"))?;
            Ok::<ImageBitmap, String>(value.unchecked_into())
        };
        let frame = bitmap(window.create_image_bitmap_with_html_video_element(video)).await?;
        let copy = bitmap(window.create_image_bitmap_with_image_bitmap(&frame)).await?;
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        *self.in_flight.borrow_mut() = Some(InFlight {
            id,
            frame: copy,
            grabbed_at,
        });
        match &*self.worker.borrow() {
            Some(worker) => worker.detect(id, frame),
            None => Err("no detector is loaded".into()),
        }
    }

    /// The newest analysed frame, now the caller's (who closes its bitmap when done).
    pub fn take_latest(&self) -> Option<AnalyzedFrame> {
        self.latest.borrow_mut().take()
    }

    fn finish(&self, id: u64, detections: Vec<Detection>, infer_ms: f64) -> Option<FrameView> {
        let in_flight = self.in_flight.borrow_mut().take()?;
        if in_flight.id != id {
            return None;
        }
        let now = now_ms();
        let mut recent = self.recent_results.borrow_mut();
        recent.push(now);
        if recent.len() > 10 {
            recent.remove(0);
        }
        let rate_hz = match (recent.first(), recent.last()) {
            (Some(first), Some(last)) if recent.len() > 1 && last > first => {
                (recent.len() - 1) as f64 * 1000.0 / (last - first)
            }
            _ => 0.0,
        };
        let stats = LoopStats {
            frames: self.stats.get().frames + 1,
            rate_hz,
            latency_ms: now - in_flight.grabbed_at,
            infer_ms,
        };
        self.stats.set(stats);
        let view = FrameView {
            detections: detections.clone(),
            width: in_flight.frame.width(),
            height: in_flight.frame.height(),
            stats,
        };
        let replaced = self.latest.borrow_mut().replace(AnalyzedFrame {
            frame: in_flight.frame,
            detections,
        });
        if let Some(old) = replaced {
            old.frame.close();
        }
        Some(view)
    }
}
