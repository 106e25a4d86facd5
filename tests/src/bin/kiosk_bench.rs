//! Benchmark (not a test): the operator station's frame rate, frame-to-overlay latency and
//! main-thread blocking in headless Chromium with the fake camera, on this machine.
//!
//!     cargo xtask build && cargo build -p linecheck-server
//!     LINECHECK_DIST=frontend/dist LINECHECK_SERVER_BIN=target/debug/linecheck-server \
//!     LINECHECK_CAMERA_VIDEO=target/camera/parts.y4m cargo run --release -p linecheck-e2e --bin kiosk_bench [SECONDS]

use linecheck_e2e::{
    Browser, CameraVideo, Server,
    kiosk::{open_screen, save_station, show_app_shell, wait_until_detector_ready},
};
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args().nth(1).map_or(Ok(30), |s| s.parse())?;
    let video = CameraVideo::load()?;
    let server = Server::start()?;
    let browser = Browser::start_with_camera(Some(&video.path)).await?;
    show_app_shell(&browser, &server.url).await?;
    save_station(&browser, "BENCH", "Line 1", "bench").await?;
    let started = Instant::now();
    let backend = wait_until_detector_ready(&browser).await?;
    let ready_s = started.elapsed().as_secs_f64();
    open_screen(&browser, "inspect").await?;
    // Every main-thread task over 50 ms from here on (the Long Tasks API).
    browser
        .eval(
            "window.__longTasks = [];
             new PerformanceObserver((list) => {
                 for (const e of list.getEntries()) window.__longTasks.push(e.duration);
             }).observe({ type: 'longtask' });
             return true;",
        )
        .await?;

    let (mut latency, mut infer) = (Vec::new(), Vec::new());
    let mut last_frame = 0;
    let first_sample = Instant::now();
    let mut first_frames = None;
    while first_sample.elapsed() < Duration::from_secs(seconds) {
        let sample = browser
            .eval(
                "const d = document.querySelector('#detector-rate').dataset;
                 return [Number(d.frames || 0), Number(d.latencyMs || 0), Number(d.inferMs || 0)];",
            )
            .await?;
        let frames = sample[0].as_u64().unwrap_or_default();
        first_frames.get_or_insert(frames);
        if frames > last_frame {
            last_frame = frames;
            latency.push(sample[1].as_f64().unwrap_or_default());
            infer.push(sample[2].as_f64().unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let frames = last_frame - first_frames.unwrap_or_default();
    let long_tasks = browser.eval("return window.__longTasks;").await?;
    let long_tasks: Vec<f64> = long_tasks
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_f64())
        .collect();
    latency.sort_by(f64::total_cmp);
    infer.sort_by(f64::total_cmp);
    anyhow::ensure!(!latency.is_empty(), "no frame was analysed in {seconds} s");

    println!(
        "machine: {} cores; headless Chromium, fake camera {}x{} y4m",
        std::thread::available_parallelism()?,
        video.width,
        video.height
    );
    println!("detector: {backend} (ready {ready_s:.1} s after the page opened)");
    println!();
    println!("| measure | median | p90 | min | max |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, values) in [
        ("frame to overlay, ms", &latency),
        ("inference in the worker, ms", &infer),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            percentile(values, 0.5),
            percentile(values, 0.9),
            values[0],
            values[values.len() - 1]
        );
    }
    println!();
    println!(
        "analysed frames: {frames} in {seconds} s = {:.2} per second (samples: {})",
        frames as f64 / seconds as f64,
        latency.len()
    );
    println!(
        "main-thread tasks over 50 ms: {} (longest {:.0} ms)",
        long_tasks.len(),
        long_tasks.iter().copied().fold(0.0, f64::max)
    );
    browser.close().await
}
