//! The default defect model: shipped in the build (and so cached by the service worker), loaded
//! with the engine at start, and, on a GPU, run once on a blank frame so the operator sees that
//! detection works on this tablet, and how fast. Without a GPU the frame is not run here: the CPU
//! backend would hold the page's only thread for seconds (live detection will run in a worker).

use vision_engine::{Detector, GpuBackend, postprocess::NmsOptions};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Copied into the build by trunk (frontend/index.html).
pub const DEFAULT_MODEL: &str = "linecheck-defects-320-fp16.onnx";

#[derive(Debug, Clone, PartialEq)]
pub enum ModelStatus {
    Loading,
    Ready {
        labels: Vec<String>,
        input: (u32, u32),
        /// Letterbox, network and decoding of one frame on the GPU, first run included; `None`
        /// where the model runs on the CPU.
        gpu_frame_ms: Option<f64>,
    },
    Failed(String),
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| format!("{url}: {e:?}"))?
        .dyn_into()
        .map_err(|_| format!("{url}: not a response"))?;
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let buffer = response.array_buffer().map_err(|e| format!("{e:?}"))?;
    let buffer = JsFuture::from(buffer).await.map_err(|e| format!("{e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// Loads the default model, and runs it once on `gpu` when there is one.
pub async fn load(gpu: Option<&GpuBackend>) -> ModelStatus {
    match load_and_run(gpu).await {
        Ok(status) => status,
        Err(reason) => ModelStatus::Failed(reason),
    }
}

async fn load_and_run(gpu: Option<&GpuBackend>) -> Result<ModelStatus, String> {
    let bytes = fetch_bytes(DEFAULT_MODEL).await?;
    let detector = Detector::from_onnx_bytes(&bytes).map_err(|e| e.to_string())?;
    let (width, height) = detector.input_size();
    let gpu_frame_ms = match gpu {
        Some(gpu) => {
            // A mid-grey frame of the model's size: nothing to find, everything to run.
            let frame = vec![128u8; (width * height * 4) as usize];
            let started = now_ms();
            let prepared = gpu.prepare(detector.network()).map_err(|e| e.to_string())?;
            detector
                .detect(&prepared, &frame, width, height, NmsOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            Some(now_ms() - started)
        }
        None => None,
    };
    Ok(ModelStatus::Ready {
        labels: detector.labels().to_vec(),
        input: (width, height),
        gpu_frame_ms,
    })
}
