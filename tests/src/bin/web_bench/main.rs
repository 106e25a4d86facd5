//! Benchmark (not a test): our engine (wasm, WebGPU and CPU backends) beside onnxruntime-web
//! (WebGPU and WASM execution providers) on the same models, input and headless Chromium
//! session; prints one table like the native `bench`, and the ratios issue 4 sets targets for.
//!
//!     cargo xtask webbench [--ultralytics-python PYTHON] [--runs N] [--warmup N] [--gpu-runs N]
//!         [--gpu-warmup N] [--threads 1,2] [--no-gpu] [--gpu-conv auto,tiled,whole,tiling0]
//!         [--profile-cpu] [--profile-gpu]
//!
//! `cargo xtask webbench` builds the page (`webbench/`) into SITE, with onnxruntime-web from npm
//! and the models, then runs this binary with `--site SITE`. It serves SITE on 127.0.0.1 with
//! the cross-origin isolation headers (COOP/COEP: ONNX Runtime's threads need
//! SharedArrayBuffer), opens the page in the e2e harness's headless Chromium (WebGPU on
//! SwiftShader where there is no GPU), starts the page's `startBench` and polls `window.bench`.

mod cpu_profile;

use anyhow::{Context, bail};
use axum::http::{HeaderName, HeaderValue, header};
use clap::Parser;
use linecheck_e2e::Browser;
use serde::Deserialize;
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};
use tower_http::{services::ServeDir, set_header::SetResponseHeaderLayer};

#[derive(Debug, Parser)]
struct Args {
    /// The built page (`cargo xtask webbench` makes it).
    #[arg(long)]
    site: PathBuf,
    /// Models to time, files in SITE/models (default: every .onnx there).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// The camera frame every runtime gets, letterboxed, in SITE.
    #[arg(long, default_value = "camera-frame.png")]
    image: String,
    /// Timed runs on the CPU (ours and the WASM EP), after the warm-up.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed runs on WebGPU (seconds each on a software adapter), after the warm-up.
    #[arg(long, default_value_t = 5)]
    gpu_runs: usize,
    #[arg(long, default_value_t = 1)]
    gpu_warmup: usize,
    /// Thread counts for onnxruntime-web's WASM EP and our CPU backend, one row each (more than 1
    /// needs cross-origin isolation; ours then runs its threaded build).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2])]
    threads: Vec<usize>,
    /// Leaves out the WebGPU rows (ours and onnxruntime-web's).
    #[arg(long)]
    no_gpu: bool,
    /// Our WebGPU rows, one per choice of convolution kernels, all in the same session: auto
    /// (the adapter's choice, as the kiosk runs), tiled (tiling and split-k per layer), whole
    /// (tiling per layer, never split), tilingN (tiling N for every layer, never split), direct.
    #[arg(long, value_delimiter = ',', default_values_t = ["auto".to_string()])]
    gpu_conv: Vec<String>,
    /// Also profiles onnxruntime-web's WASM EP and our CPU backend (one thread each) with
    /// Chromium's sampling profiler, on the page's thread: where each spends its time.
    #[arg(long)]
    profile_cpu: bool,
    /// Also times our GPU network with timestamp queries: GPU time of one inference, and by
    /// kernel with each launch in a pass of its own.
    #[arg(long)]
    profile_gpu: bool,
    /// Inferences sampled per profile.
    #[arg(long, default_value_t = 10)]
    profile_runs: usize,
    /// Gives up after this many minutes.
    #[arg(long, default_value_t = 60)]
    timeout_min: u64,
}

/// One row of `window.bench.results`, as `webbench/page/bench.mjs` writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Measured {
    model: String,
    #[serde(default)]
    failed: Option<String>,
    #[serde(default)]
    config: serde_json::Value,
    #[serde(default)]
    input: String,
    #[serde(default)]
    precision: String,
    #[serde(default)]
    runtime: String,
    #[serde(default)]
    backend: String,
    #[serde(default)]
    adapter: String,
    threads: Option<u32>,
    gpu_memory_bytes: Option<f64>,
    #[serde(default)]
    load_ms: f64,
    #[serde(default)]
    cold_ms: f64,
    /// Cold start's steps in order, with their milliseconds.
    #[serde(default)]
    cold_parts: Vec<(String, f64)>,
    #[serde(default)]
    median: f64,
    #[serde(default)]
    min: f64,
    #[serde(default)]
    max: f64,
    /// Every timed run's milliseconds, in the order they ran.
    #[serde(default)]
    times: Vec<f64>,
    #[serde(default)]
    runs: usize,
    #[serde(default)]
    warmup: usize,
    #[serde(default)]
    is_reference: bool,
    agreement: Option<Agreement>,
    gpu_profile: Option<GpuProfile>,
}

/// Our GPU network timed by timestamp queries (`--profile-gpu`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GpuProfile {
    gpu_ms: Option<f64>,
    /// One line per kernel: "kernel, launches, ms".
    kernels: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Agreement {
    vs: String,
    rel_l2: Option<f64>,
    r#box: Option<f64>,
    score: Option<f64>,
    #[serde(default)]
    non_finite: u64,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BenchState {
    state: String,
    progress: Vec<String>,
    results: Vec<Measured>,
    error: Option<String>,
    #[serde(default)]
    cross_origin_isolated: bool,
    #[serde(default)]
    user_agent: String,
}

/// The measurements to make for each model, in order: the first is every other's reference
/// output (ONNX Runtime's WASM EP on one thread, the plainest path).
fn configs(args: &Args) -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut configs: Vec<_> = args
        .threads
        .iter()
        .map(|&t| json!({ "runtime": "ort", "ep": "wasm", "threads": t }))
        .collect();
    configs.extend(
        args.threads
            .iter()
            .map(|&t| json!({ "runtime": "ours", "backend": "cpu", "threads": t })),
    );
    if !args.no_gpu {
        configs.push(json!({ "runtime": "ort", "ep": "webgpu" }));
        for conv in &args.gpu_conv {
            configs.push(json!({ "runtime": "ours", "backend": "gpu", "conv": conv }));
        }
    }
    configs
}

fn model_names(args: &Args) -> anyhow::Result<Vec<String>> {
    if !args.models.is_empty() {
        return Ok(args.models.clone());
    }
    let dir = args.site.join("models");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "{}: build the page with `cargo xtask webbench`",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".onnx"))
        .collect();
    names.sort();
    anyhow::ensure!(!names.is_empty(), "no .onnx model in {}", dir.display());
    Ok(names)
}

/// Serves the page on a free port of 127.0.0.1 (a secure context, so WebGPU is there), with
/// COOP/COEP so that the page is cross-origin isolated.
async fn serve(site: PathBuf) -> anyhow::Result<String> {
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::overriding(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    let app = axum::Router::new()
        .fallback_service(ServeDir::new(site))
        .layer(header("cross-origin-opener-policy", "same-origin"))
        .layer(header("cross-origin-embedder-policy", "require-corp"))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// What the page gets to run: models, input image, measurements, run counts.
fn plan(args: &Args) -> anyhow::Result<serde_json::Value> {
    let models: Vec<_> = model_names(args)?
        .into_iter()
        .map(|name| serde_json::json!({ "url": format!("models/{name}"), "name": name }))
        .collect();
    Ok(serde_json::json!({
        "image": args.image,
        "models": models,
        "configs": configs(args),
        "cpu": { "warmup": args.warmup, "runs": args.runs },
        "gpu": { "warmup": args.gpu_warmup, "runs": args.gpu_runs },
        "profileGpu": args.profile_gpu,
    }))
}

async fn run_page(args: &Args, browser: &Browser, url: &str) -> anyhow::Result<BenchState> {
    browser.client.goto(&format!("{url}index.html")).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while browser.eval("return typeof window.startBench;").await? != "function" {
        anyhow::ensure!(Instant::now() < deadline, "the page did not load bench.mjs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let plan = plan(args)?;
    browser
        .eval(&format!("return window.startBench({plan});"))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_min * 60);
    let mut printed = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let state: BenchState =
            serde_json::from_value(browser.eval("return window.bench;").await?)?;
        for line in &state.progress[printed..] {
            eprintln!("web_bench: {line} (load average {})", load_average());
        }
        printed = state.progress.len();
        match state.state.as_str() {
            "done" => return Ok(state),
            "failed" => bail!("the page failed: {}", state.error.unwrap_or_default()),
            _ if Instant::now() > deadline => bail!("not done after {} minutes", args.timeout_min),
            _ => {}
        }
    }
}

/// Profiles of onnxruntime-web's WASM EP and our CPU backend, one thread each, on every model:
/// (title, functions with their shares).
async fn profile_cpu(
    args: &Args,
    browser: &Browser,
) -> anyhow::Result<Vec<(String, Vec<(String, f64)>)>> {
    let plan = plan(args)?;
    let mut profiles = Vec::new();
    for model in plan["models"].as_array().into_iter().flatten() {
        for config in [
            serde_json::json!({ "runtime": "ort", "ep": "wasm", "threads": 1 }),
            serde_json::json!({ "runtime": "ours", "backend": "cpu" }),
        ] {
            let title = format!(
                "{} on {}, {} inferences on the page's thread",
                config["runtime"], model["name"], args.profile_runs
            );
            eprintln!("web_bench: profiling {title}");
            let shares =
                cpu_profile::profile(browser, &plan, model, config, args.profile_runs).await?;
            profiles.push((title, shares));
        }
    }
    Ok(profiles)
}

fn print_table(results: &[Measured]) {
    println!(
        "| model | input | runtime | backend | adapter | precision | threads | runtime load ms | cold start ms | median ms | min ms | max ms | runs (warm-up) | peak GPU memory | output vs reference: rel. L2 / max box px / max score |"
    );
    println!(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in results {
        if let Some(reason) = &r.failed {
            println!(
                "| {} | | {} | | | | | | | | | | | | FAILED: {reason} |",
                r.model, r.config
            );
            continue;
        }
        let threads = r.threads.map_or("-".into(), |t| t.to_string());
        let memory = r
            .gpu_memory_bytes
            .map_or("-".into(), |b| format!("{:.1} MB", b / 1e6));
        let agreement = match &r.agreement {
            Some(Agreement { error: Some(e), .. }) => format!("cannot compare: {e}"),
            Some(a) if a.non_finite > 0 => format!("{} non-finite values", a.non_finite),
            Some(_) if r.is_reference => "reference".into(),
            Some(a) => format!(
                "{:.1e} / {:.3} / {:.4}",
                a.rel_l2.unwrap_or(f64::NAN),
                a.r#box.unwrap_or(f64::NAN),
                a.score.unwrap_or(f64::NAN)
            ),
            None => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {threads} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} ({}) | {memory} | {agreement} |",
            r.model,
            r.input,
            r.runtime,
            r.backend,
            r.adapter,
            r.precision,
            r.load_ms,
            r.cold_ms,
            r.median,
            r.min,
            r.max,
            r.runs,
            r.warmup,
        );
    }
    if let Some(reference) = results.iter().find_map(|r| r.agreement.as_ref()) {
        println!(
            "(outputs compared with {}'s on the same input)",
            reference.vs
        );
    }
}

/// Ratios against the targets of issue 4, per model.
fn print_ratios(results: &[Measured]) {
    let find = |model: &str, runtime: &str, backend: &str, threads: Option<u32>| {
        results.iter().find(|r| {
            r.failed.is_none()
                && r.model == model
                && r.runtime.starts_with(runtime)
                && r.backend.starts_with(backend)
                && r.threads == threads
        })
    };
    let mut models: Vec<&str> = results.iter().map(|r| r.model.as_str()).collect();
    models.dedup();
    for model in models {
        let ratio = |ours: Option<&Measured>, peer: Option<&Measured>, what: &str, target: f64| {
            if let (Some(ours), Some(peer)) = (ours, peer) {
                let r = ours.median / peer.median;
                let verdict = if r <= target {
                    "met".to_string()
                } else {
                    format!("missed by {:.0}%", (r / target - 1.0) * 100.0)
                };
                println!(
                    "ratio {model}: {what} = {:.1} / {:.1} ms = {r:.2} (target <= {target}: {verdict})",
                    ours.median, peer.median
                );
            }
        };
        let ours_gpu = results.iter().filter(|r| {
            r.failed.is_none()
                && r.model == model
                && r.runtime == "ours"
                && r.backend.starts_with("GPU")
        });
        for ours in ours_gpu {
            ratio(
                Some(ours),
                find(model, "onnxruntime", "WebGPU", None),
                &format!("ours {} / onnxruntime-web WebGPU", ours.backend),
                0.5,
            );
        }
        let mut cpu_threads: Vec<u32> = results
            .iter()
            .filter(|r| r.model == model && r.runtime == "ours")
            .filter_map(|r| r.threads)
            .collect();
        cpu_threads.dedup();
        for threads in cpu_threads {
            ratio(
                find(model, "ours", "CPU", Some(threads)),
                find(model, "onnxruntime", "WASM", Some(threads)),
                &format!("ours CPU {threads}T / onnxruntime-web WASM {threads}T"),
                1.0,
            );
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.runs > 0 && args.gpu_runs > 0,
        "--runs and --gpu-runs must be at least 1"
    );
    let url = serve(args.site.clone()).await?;
    let load_before = load_average();
    let browser = Browser::start().await?;
    let state = run_page(&args, &browser, &url).await;
    let profiles = match (&state, args.profile_cpu) {
        (Ok(_), true) => Some(profile_cpu(&args, &browser).await),
        _ => None,
    };
    let _ = browser.close().await;
    let state = state?;

    println!(
        "\nmachine: {} cores ({}), load average {load_before} before, {} after; {}; \
         cross-origin isolated: {}",
        std::thread::available_parallelism()?,
        cpu_model(),
        load_average(),
        state.user_agent,
        state.cross_origin_isolated,
    );
    println!(
        "each runtime in its own dedicated worker, loaded one at a time, then all taking turns, \
         one inference each in rotating order (so load drift hits all alike); runtime load = fetch \
         and compile the runtime's wasm (onnxruntime-web: a one-node session, which also opens its \
         WebGPU device); cold start = model bytes -> first result; runs = input in -> first output \
         read back to the worker\n"
    );
    print_table(&state.results);
    println!();
    for r in state.results.iter().filter(|r| r.failed.is_none()) {
        let parts: Vec<String> = r
            .cold_parts
            .iter()
            .map(|(part, ms)| format!("{part} {ms:.0} ms"))
            .collect();
        println!(
            "cold start {} {} {}: {}",
            r.model,
            r.runtime,
            r.backend,
            parts.join(", ")
        );
    }
    println!();
    for r in state.results.iter().filter(|r| r.failed.is_none()) {
        let times: Vec<String> = r.times.iter().map(|ms| format!("{ms:.0}")).collect();
        println!(
            "runs {} {} {} {}, ms in order: {}",
            r.model,
            r.runtime,
            r.backend,
            r.threads.map_or(String::new(), |t| format!("{t}T")),
            times.join(", ")
        );
    }
    println!();
    print_ratios(&state.results);
    for r in &state.results {
        let Some(profile) = &r.gpu_profile else {
            continue;
        };
        let Some(gpu_ms) = profile.gpu_ms else {
            println!(
                "\nGPU profile, {}: the adapter has no timestamp queries",
                r.model
            );
            continue;
        };
        println!(
            "\nGPU profile, {} {} {}: {gpu_ms:.1} ms GPU time in one pass; by kernel, each launch \
             in its own pass:",
            r.model, r.runtime, r.backend
        );
        for line in profile.kernels.as_deref().unwrap_or_default().lines() {
            println!("  {line}");
        }
    }
    if let Some(profiles) = profiles {
        for (title, shares) in profiles? {
            println!("\nprofile, {title}: share of the samples (100 us apart), largest first");
            for (function, share) in shares.iter().take(15) {
                println!("  {:5.1}%  {function}", share * 100.0);
            }
        }
    }
    let failed = state.results.iter().filter(|r| r.failed.is_some()).count();
    anyhow::ensure!(failed == 0, "{failed} measurements failed (see the table)");
    Ok(())
}
