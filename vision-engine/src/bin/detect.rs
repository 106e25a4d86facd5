//! `detect`: runs a detector on images and prints one JSON object per image.
//!
//! ```text
//! cargo run --release -p vision-engine --bin detect -- --model M.onnx [--backend gpu|cpu]
//!     [--precision f32|f16] [--conf 0.25] [--iou 0.45] [--raw-out DIR] IMAGE...
//! ```

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

// The tool reads files and opens a native GPU: there is nothing to run in a browser.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use clap::{Parser, ValueEnum};
    use serde_json::json;
    use std::{path::PathBuf, process::ExitCode, time::Instant};
    use vision_engine::{
        CpuNetwork, Detector, GpuBackend, Precision, graph::Executor, npy, postprocess::NmsOptions,
    };

    #[derive(Debug, Clone, Copy, ValueEnum)]
    enum BackendChoice {
        Gpu,
        Cpu,
    }

    /// Runs a YOLO-style ONNX detector on images; prints one JSON object per image.
    #[derive(Debug, Parser)]
    struct Args {
        /// The ONNX model (Ultralytics detect export or LineCheck's own).
        #[arg(long)]
        model: PathBuf,
        #[arg(long, value_enum, default_value = "gpu")]
        backend: BackendChoice,
        /// The GPU's tensors: f32 (raw outputs match ONNX Runtime's), or f16 (needs an adapter
        /// with shader-f16; sums stay f32).
        #[arg(long, default_value = "f32")]
        precision: Precision,
        /// Confidence threshold: detections scoring above it are kept.
        #[arg(long, default_value_t = 0.25)]
        conf: f32,
        /// IoU above which NMS drops the weaker of two boxes of one class.
        #[arg(long, default_value_t = 0.45)]
        iou: f32,
        /// Writes the model's raw first output for each image as DIR/<image stem>.npy.
        #[arg(long)]
        raw_out: Option<PathBuf>,
        /// PNG or JPEG images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    }

    fn ms(since: Instant) -> f64 {
        since.elapsed().as_secs_f64() * 1000.0
    }

    pub fn main() -> ExitCode {
        let args = Args::parse();
        match pollster::block_on(run(&args)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(message) => {
                eprintln!("detect: {message}");
                ExitCode::FAILURE
            }
        }
    }

    /// Loads the model and the backend; `Ok(false)` when some image failed.
    async fn run(args: &Args) -> Result<bool, String> {
        if matches!(args.backend, BackendChoice::Cpu) && args.precision != Precision::F32 {
            return Err(
                "--precision f16 is for the GPU backend; the CPU backend runs in f32".into(),
            );
        }
        let started = Instant::now();
        let bytes =
            std::fs::read(&args.model).map_err(|e| format!("{}: {e}", args.model.display()))?;
        let detector = Detector::from_onnx_bytes(&bytes)
            .map_err(|e| format!("{}: {e}", args.model.display()))?;
        let load_ms = ms(started);
        if let Some(dir) = &args.raw_out {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        match args.backend {
            BackendChoice::Cpu => {
                let executor = CpuNetwork::new(detector.network()).map_err(|e| e.to_string())?;
                Ok(run_images(args, &detector, &executor, (load_ms, None)).await)
            }
            BackendChoice::Gpu => {
                // Weights uploaded and every launch bound once; each image is one submission.
                let gpu = GpuBackend::with_precision(args.precision)
                    .await
                    .map_err(|e| e.to_string())?;
                let prepared = gpu.prepare(detector.network()).map_err(|e| e.to_string())?;
                let memory = Some(prepared.activation_bytes());
                Ok(run_images(args, &detector, &prepared, (ms(started), memory)).await)
            }
        }
    }

    /// `load`: milliseconds from reading the model to ready, and the GPU memory its tensors take.
    async fn run_images(
        args: &Args,
        detector: &Detector,
        executor: &impl Executor,
        (load_ms, gpu_memory): (f64, Option<u64>),
    ) -> bool {
        let options = NmsOptions {
            confidence: args.conf,
            iou: args.iou,
            ..NmsOptions::default()
        };
        let mut all_ok = true;
        for path in &args.images {
            if let Err(message) = run_image(
                args,
                detector,
                executor,
                options,
                path,
                (load_ms, gpu_memory),
            )
            .await
            {
                eprintln!("detect: {}: {message}", path.display());
                all_ok = false;
            }
        }
        all_ok
    }

    async fn run_image(
        args: &Args,
        detector: &Detector,
        executor: &impl Executor,
        options: NmsOptions,
        path: &std::path::Path,
        (load_ms, gpu_memory): (f64, Option<u64>),
    ) -> Result<(), String> {
        let started = Instant::now();
        let image = image::open(path).map_err(|e| e.to_string())?.to_rgba8();
        let (width, height) = image.dimensions();
        let decode_ms = ms(started);
        let inference = Instant::now();
        // The raw output is read back from the GPU only when it is to be written.
        let (result, raw_output) = match &args.raw_out {
            Some(_) => detector
                .detect_with_raw_output(executor, image.as_raw(), width, height, options)
                .await
                .map(|(result, raw)| (result, Some(raw))),
            None => detector
                .detect(executor, image.as_raw(), width, height, options)
                .await
                .map(|result| (result, None)),
        }
        .map_err(|e| e.to_string())?;
        let detect_ms = ms(inference);
        if let (Some(dir), Some(raw_output)) = (&args.raw_out, raw_output) {
            let stem = path
                .file_stem()
                .map_or("output".into(), |s| s.to_string_lossy().into_owned());
            let out = dir.join(format!("{stem}.npy"));
            std::fs::write(&out, npy::write(&raw_output))
                .map_err(|e| format!("{}: {e}", out.display()))?;
        }
        let detections: Vec<_> = result
            .detections
            .iter()
            .map(|d| json!({ "class_id": d.class_id, "label": d.label, "score": d.score, "box": d.bbox }))
            .collect();
        let line = json!({
            "image": path.display().to_string(),
            "width": width,
            "height": height,
            "detections": detections,
            "backend": executor.name(),
            // Bytes the intermediate tensors take on the GPU (buffers shared by liveness).
            "gpu_activation_bytes": gpu_memory,
            "timings_ms": { "model_load": load_ms, "image_decode": decode_ms, "detect": detect_ms },
        });
        println!("{line}");
        Ok(())
    }
}
