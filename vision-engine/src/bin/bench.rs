//! `bench`: times the engine on a model and, in the same run, native ONNX Runtime (CPU, same
//! thread count) as the peer; prints one table. A benchmark, never a test.
//!
//! ```text
//! cargo run --release -p vision-engine --bin bench -- --model M.onnx [--backend gpu|cpu]
//!     [--precision f32|f16] [--runs N] [--warmup N] [--threads N] [--conv auto|direct|tiled|whole|tensor-cores]
//!     [--frame 1280x720]
//!     [--profile] [--no-peer]
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
    use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Instant};
    use vision_engine::{
        ConvKernels, CpuNetwork, Detector, GpuBackend, GpuNetwork, Precision, Tensor,
        graph::Executor, letterbox::Letterbox, postprocess::NmsOptions,
    };

    #[derive(Debug, Clone, Copy, ValueEnum)]
    enum BackendChoice {
        Gpu,
        Cpu,
    }

    #[derive(Debug, Clone, Copy, ValueEnum)]
    enum ConvChoice {
        /// The adapter's own choice (`conv_kernels_for`).
        Auto,
        /// One invocation per output value: the reference kernel.
        Direct,
        /// Implicit GEMM, tiling and split-k chosen per layer.
        Tiled,
        /// Implicit GEMM, tiling chosen per layer, never split along k.
        Whole,
        /// As tiled, every tiled layer on 64x64 tiles with its products on matrix units (tensor
        /// cores: f16 factors, f32 sums).
        TensorCores,
    }

    /// Times a detector on the engine and on ONNX Runtime (CPU) and prints a table.
    #[derive(Debug, Parser)]
    struct Args {
        /// The ONNX model.
        #[arg(long)]
        model: PathBuf,
        #[arg(long, value_enum, default_value = "gpu")]
        backend: BackendChoice,
        /// The GPU's tensors: f32, or f16 (needs an adapter with shader-f16; sums stay f32).
        #[arg(long, default_value = "f32")]
        precision: Precision,
        /// Timed runs, after the warm-up.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Untimed runs after the first (cold) one.
        #[arg(long, default_value_t = 10)]
        warmup: usize,
        /// CPU threads for the CPU backend and the peer (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// The GPU's convolution kernels.
        #[arg(long, value_enum, default_value = "auto")]
        conv: ConvChoice,
        /// Forces one tiling of `kernels::CONV_TILINGS` (by index) on every tiled convolution.
        #[arg(long)]
        tiling: Option<usize>,
        /// Also prints GPU time per kernel and the slowest launches (timestamp queries).
        #[arg(long)]
        profile: bool,
        /// The camera frame of the whole-frame timing (GPU): RGBA pixels uploaded, letterboxed,
        /// detected, boxes read back.
        #[arg(long, default_value = "1280x720", value_parser = parse_frame)]
        frame: (u32, u32),
        /// Writes every launch's GPU time as JSON lines (node, kernel, ms) to this file.
        #[arg(long)]
        profile_json: Option<PathBuf>,
        /// The peer script (ONNX Runtime).
        #[arg(long, default_value = "vision-engine/tools/ort_peer.py")]
        peer_script: PathBuf,
        #[arg(long, default_value = "python3")]
        python: String,
        /// Skips the ONNX Runtime peer.
        #[arg(long)]
        no_peer: bool,
    }

    /// One row of the table.
    struct Row {
        runtime: String,
        device: String,
        precision: String,
        cold_ms: f64,
        times: Summary,
        gpu: Option<Summary>,
        memory: Option<u64>,
    }

    #[derive(Clone, Copy)]
    struct Summary {
        median: f64,
        min: f64,
        max: f64,
    }

    impl Summary {
        fn of(mut times: Vec<f64>) -> Self {
            times.sort_by(f64::total_cmp);
            Self {
                median: times[times.len() / 2],
                min: times[0],
                max: times[times.len() - 1],
            }
        }
    }

    fn ms(since: Instant) -> f64 {
        since.elapsed().as_secs_f64() * 1000.0
    }

    pub fn main() -> ExitCode {
        let args = Args::parse();
        match pollster::block_on(run(&args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("bench: {message}");
                ExitCode::FAILURE
            }
        }
    }

    /// The input both runtimes get: a fixed pattern in [0, 1] (`ort_peer.py` makes the same).
    fn pattern_input(shape: &[usize]) -> Tensor {
        let len: usize = shape.iter().product();
        let data = (0..len as u64)
            .map(|i| (i * 7919 % 1000) as f32 / 999.0)
            .collect();
        Tensor::new(shape.to_vec(), data).expect("the shape's own length")
    }

    async fn run(args: &Args) -> Result<(), String> {
        if args.runs == 0 {
            return Err("--runs must be at least 1".into());
        }
        if matches!(args.backend, BackendChoice::Cpu) && args.precision != Precision::F32 {
            return Err(
                "--precision f16 is for the GPU backend; the CPU backend runs in f32".into(),
            );
        }
        let threads = args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        });
        let bytes =
            std::fs::read(&args.model).map_err(|e| format!("{}: {e}", args.model.display()))?;

        // Cold start: model bytes in memory → first result.
        let started = Instant::now();
        let detector = Detector::from_onnx_bytes(&bytes)
            .map_err(|e| format!("{}: {e}", args.model.display()))?;
        let parse_ms = ms(started);
        let network = detector.network();
        let input = pattern_input(&network.input_shape);
        let row = match args.backend {
            BackendChoice::Cpu => {
                vision_engine::cpu::set_worker_threads(threads);
                let prepare_started = Instant::now();
                let executor = CpuNetwork::new(network).map_err(|e| e.to_string())?;
                let prepare_ms = ms(prepare_started);
                let (first_ms, times) = time_runs(args, &executor, &input).await?;
                Row {
                    runtime: "ours, CPU".into(),
                    device: format!("{threads} threads"),
                    precision: "f32".into(),
                    cold_ms: parse_ms + prepare_ms + first_ms,
                    times,
                    gpu: None,
                    memory: None,
                }
            }
            BackendChoice::Gpu => {
                let backend_started = Instant::now();
                let gpu = GpuBackend::with_precision(args.precision)
                    .await
                    .map_err(|e| e.to_string())?;
                let conv_kernels = match (args.conv, args.tiling) {
                    (ConvChoice::Auto | ConvChoice::Tiled, Some(i))
                        if i < kernels::CONV_TILINGS.len() =>
                    {
                        ConvKernels::Tiling(i)
                    }
                    (ConvChoice::Auto | ConvChoice::Tiled, Some(i)) => {
                        return Err(format!(
                            "--tiling {i}: there are {} tilings of the tiled kernels",
                            kernels::CONV_TILINGS.len()
                        ));
                    }
                    (conv, Some(_)) => {
                        return Err(format!(
                            "--tiling picks a tiling of the tiled kernels, not of --conv {}",
                            conv.to_possible_value()
                                .expect("no variant is skipped")
                                .get_name()
                        ));
                    }
                    (ConvChoice::Auto, None) => gpu.conv_kernels(),
                    (ConvChoice::Direct, None) => ConvKernels::Direct,
                    (ConvChoice::Tiled, None) => ConvKernels::Tiled,
                    (ConvChoice::Whole, None) => ConvKernels::TiledWhole,
                    (ConvChoice::TensorCores, None) if gpu.context().tensor_cores() => {
                        ConvKernels::TensorCores
                    }
                    (ConvChoice::TensorCores, None) => {
                        return Err(format!(
                            "--conv tensor-cores: {} has no matrix units wgpu can use",
                            gpu.context().adapter()
                        ));
                    }
                };
                gpu.set_conv_kernels(conv_kernels);
                let pipelines_ms = ms(backend_started);
                let prepare_started = Instant::now();
                let prepared = gpu.prepare(network).map_err(|e| e.to_string())?;
                let prepare_ms = ms(prepare_started);
                let (first_ms, times) = time_runs(args, &prepared, &input).await?;
                println!(
                    "cold start: parse + fold {parse_ms:.1} ms, device + pipelines {pipelines_ms:.1} ms, \
                     weights + bind groups {prepare_ms:.1} ms, first run {first_ms:.1} ms; \
                     {} launches per inference; activations {:.1} MB, largest single step \
                     (inputs + outputs) {:.1} MB",
                    prepared.launch_count(),
                    prepared.activation_bytes() as f64 / 1e6,
                    prepared.largest_step_bytes() as f64 / 1e6,
                );
                // Runs without the input upload and the output readback: their wall clock
                // against the GPU time splits the overhead between recording + submission and
                // the transfers.
                let mut gpu_times = Vec::with_capacity(args.runs);
                let mut resident_walls = Vec::with_capacity(args.runs);
                for _ in 0..args.runs {
                    if let Some(t) = prepared.gpu_ms().await.map_err(|e| e.to_string())? {
                        gpu_times.push(t);
                    }
                    let started = Instant::now();
                    prepared.run_resident().await.map_err(|e| e.to_string())?;
                    resident_walls.push(ms(started));
                }
                println!(
                    "network alone (no input upload, no output readback): wall median {:.3} ms",
                    Summary::of(resident_walls).median
                );
                time_whole_frames(args, &detector, &prepared).await?;
                if args.profile || args.profile_json.is_some() {
                    print_profile(&prepared, args).await?;
                }
                Row {
                    runtime: format!("ours, GPU ({conv_kernels})"),
                    device: gpu.context().adapter().to_string(),
                    precision: gpu.precision().name().into(),
                    cold_ms: parse_ms + pipelines_ms + prepare_ms + first_ms,
                    times,
                    gpu: (!gpu_times.is_empty()).then(|| Summary::of(gpu_times)),
                    memory: Some(prepared.activation_bytes()),
                }
            }
        };
        let flops = network.flops();
        let mut rows = vec![row];
        if !args.no_peer {
            rows.push(run_peer(args, threads)?);
        }

        let shape = &network.input_shape;
        let model = args.model.file_name().map_or_else(
            || args.model.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        println!(
            "\nmodel {model}, input {}x{}, {:.2} GFLOP per inference (convolutions and matrix \
             products), {} warm-up + {} timed runs; wall clock = write input, run, read outputs",
            shape[3],
            shape[2],
            flops as f64 / 1e9,
            args.warmup,
            args.runs,
        );
        println!(
            "| runtime | device | precision | cold start ms | median ms | min ms | max ms | GPU time ms (median) | GFLOP/s (median) | GPU activation memory |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for row in &rows {
            let gpu = row.gpu.map_or("-".into(), |g| format!("{:.3}", g.median));
            let best = row.gpu.map_or(row.times.median, |g| g.median);
            let memory = row
                .memory
                .map_or("-".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
            println!(
                "| {} | {} | {} | {:.1} | {:.3} | {:.3} | {:.3} | {gpu} | {:.0} | {memory} |",
                row.runtime,
                row.device,
                row.precision,
                row.cold_ms,
                row.times.median,
                row.times.min,
                row.times.max,
                flops as f64 / 1e6 / best,
            );
        }
        Ok(())
    }

    fn parse_frame(text: &str) -> Result<(u32, u32), String> {
        let size = text
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
            .filter(|&(w, h): &(u32, u32)| w > 0 && h > 0);
        size.ok_or_else(|| format!("{text}: expected WIDTHxHEIGHT, e.g. 1280x720"))
    }

    /// Whole frames on the GPU, as the kiosk runs them: a camera-sized RGBA frame uploaded,
    /// letterboxed, the network, decoding + NMS, the boxes read back; beside the same frame with
    /// the raw output read back and decoded on the CPU (the path before GPU NMS).
    async fn time_whole_frames(
        args: &Args,
        detector: &Detector,
        prepared: &GpuNetwork<'_>,
    ) -> Result<(), String> {
        let (width, height) = args.frame;
        let frame: Vec<u8> = (0..u64::from(width) * u64::from(height) * 4)
            .map(|i| (i * 7919 % 251) as u8)
            .collect();
        let (in_w, in_h) = detector.input_size();
        let letterbox = Letterbox::new(width, height, in_w, in_h);
        let options = NmsOptions::default();
        let mut boxes_only = Vec::with_capacity(args.runs);
        let mut raw_and_cpu = Vec::with_capacity(args.runs);
        let mut found = 0;
        for i in 0..args.warmup + args.runs {
            let started = Instant::now();
            found = detector
                .detect(prepared, &frame, width, height, options)
                .await
                .map_err(|e| e.to_string())?
                .detections
                .len();
            let gpu_nms = ms(started);
            let started = Instant::now();
            let raw = prepared
                .execute_rgba(&frame, &letterbox)
                .await
                .map_err(|e| e.to_string())?
                .swap_remove(0);
            detector
                .decode(&raw, &letterbox, options)
                .map_err(|e| e.to_string())?;
            if i >= args.warmup {
                boxes_only.push(gpu_nms);
                raw_and_cpu.push(ms(started));
            }
        }
        println!(
            "whole frame ({width}x{height} RGBA upload, letterbox, network, decode + NMS on the GPU, \
             {found} boxes read back): wall median {:.3} ms; with the raw output read back and \
             NMS on the CPU instead: {:.3} ms",
            Summary::of(boxes_only).median,
            Summary::of(raw_and_cpu).median
        );
        Ok(())
    }

    /// The first run's milliseconds, then the summary of `runs` timed runs after the warm-up.
    async fn time_runs(
        args: &Args,
        executor: &impl Executor,
        input: &Tensor,
    ) -> Result<(f64, Summary), String> {
        let mut times = Vec::with_capacity(args.runs);
        let mut first_ms = 0.0;
        for i in 0..1 + args.warmup + args.runs {
            let started = Instant::now();
            executor
                .execute(input.clone())
                .await
                .map_err(|e| e.to_string())?;
            let elapsed = ms(started);
            if i == 0 {
                first_ms = elapsed;
            } else if i > args.warmup {
                times.push(elapsed);
            }
        }
        Ok((first_ms, Summary::of(times)))
    }

    /// GPU time by kernel, and the ten slowest launches, each launch in a pass of its own.
    async fn print_profile(
        prepared: &vision_engine::GpuNetwork<'_>,
        args: &Args,
    ) -> Result<(), String> {
        let Some(mut launches) = prepared.profile().await.map_err(|e| e.to_string())? else {
            println!("profile: the adapter has no timestamp queries");
            return Ok(());
        };
        if let Some(path) = &args.profile_json {
            let lines: String = launches
                .iter()
                .map(|l| {
                    format!(
                        "{}\n",
                        serde_json::json!({ "node": l.node, "kernel": l.kernel, "ms": l.ms })
                    )
                })
                .collect();
            std::fs::write(path, lines).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let total: f64 = launches.iter().map(|l| l.ms).sum();
        let mut by_kernel: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        for l in &launches {
            let entry = by_kernel.entry(l.kernel).or_default();
            entry.0 += 1;
            entry.1 += l.ms;
        }
        let mut by_kernel: Vec<_> = by_kernel.into_iter().collect();
        by_kernel.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
        println!(
            "\nprofile: {total:.3} ms GPU time over {} launches, each in its own pass",
            launches.len()
        );
        println!("| kernel | launches | ms | share |");
        println!("| --- | --- | --- | --- |");
        for (kernel, (count, t)) in by_kernel {
            println!(
                "| {kernel} | {count} | {t:.3} | {:.0}% |",
                100.0 * t / total
            );
        }
        launches.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        println!("slowest launches:");
        for l in launches.iter().take(10) {
            println!("  {:.3} ms  {}  {}", l.ms, l.kernel, l.node);
        }
        Ok(())
    }

    /// Runs `ort_peer.py` and reads its one JSON line.
    fn run_peer(args: &Args, threads: usize) -> Result<Row, String> {
        let script = if args.peer_script.exists() {
            args.peer_script.clone()
        } else {
            // From the crate directory (cargo run from anywhere in the checkout).
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/ort_peer.py")
        };
        let output = std::process::Command::new(&args.python)
            .arg(&script)
            .args(["--model".as_ref(), args.model.as_os_str()])
            .args(["--threads", &threads.to_string()])
            .args(["--runs", &args.runs.to_string()])
            .args(["--warmup", &args.warmup.to_string()])
            .output()
            .map_err(|e| {
                format!(
                    "the ONNX Runtime peer ({} {}) did not start: {e}; --no-peer skips it",
                    args.python,
                    script.display()
                )
            })?;
        if !output.status.success() {
            return Err(format!(
                "the ONNX Runtime peer failed ({}); --no-peer skips it:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let peer: serde_json::Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("the peer's output is not JSON: {e}"))?;
        let number = |key: &str| {
            peer[key]
                .as_f64()
                .ok_or_else(|| format!("the peer's output has no number \"{key}\""))
        };
        Ok(Row {
            runtime: peer["runtime"]
                .as_str()
                .unwrap_or("ONNX Runtime")
                .to_string(),
            device: format!("{threads} threads"),
            precision: peer["precision"].as_str().unwrap_or("f32").to_string(),
            cold_ms: number("cold_ms")?,
            times: Summary {
                median: number("median_ms")?,
                min: number("min_ms")?,
                max: number("max_ms")?,
            },
            gpu: None,
            memory: None,
        })
    }
}
