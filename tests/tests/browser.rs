//! The kiosk in a real headless Chromium against the real server: app shell, service worker,
//! WebGPU through vision-engine, IndexedDB across reloads, and a start with the server gone.

use linecheck_e2e::{Browser, LOAD, Server, open_kiosk};
use std::time::Duration;

/// SwiftShader compiles WGSL on the CPU: the first pipeline can take a while on 2 cores.
const GPU_CHECK: Duration = Duration::from_secs(120);
/// Fetching, loading and one frame of the 3 M-parameter default model on SwiftShader.
const MODEL_LOAD: Duration = Duration::from_secs(300);

/// Waits for the service worker to be active and in control of the page.
async fn wait_until_controlled(browser: &Browser) -> anyhow::Result<()> {
    let state = browser
        .settled_state("#sw-status", &["registering"], LOAD)
        .await?;
    assert_eq!(state, "active", "{}", browser.text("#sw-status").await?);
    let controlled = browser
        .eval_async(
            "await navigator.serviceWorker.ready;
             for (let i = 0; i < 100 && !navigator.serviceWorker.controller; i++) {
                 await new Promise((r) => setTimeout(r, 100));
             }
             return navigator.serviceWorker.controller !== null;",
        )
        .await?;
    assert_eq!(
        controlled, true,
        "the service worker never took control of the page"
    );
    Ok(())
}

async fn save_station(
    browser: &Browser,
    station: &str,
    line: &str,
    operator: &str,
) -> anyhow::Result<()> {
    browser
        .save_setup(&[
            ("#station", station),
            ("#line", line),
            ("#operator", operator),
        ])
        .await
}

async fn assert_station_shown(
    browser: &Browser,
    station: &str,
    line: &str,
    operator: &str,
) -> anyhow::Result<()> {
    browser.wait_until_settings_loaded().await?;
    assert_eq!(browser.value("#station").await?, station);
    assert_eq!(browser.value("#line").await?, line);
    assert_eq!(browser.value("#operator").await?, operator);
    Ok(())
}

#[tokio::test]
async fn app_shell_loads_and_the_service_worker_activates() -> anyhow::Result<()> {
    let server = Server::start()?;
    let browser = open_kiosk(&server).await?;
    assert_eq!(browser.text("h1").await?, "LineCheck");
    wait_until_controlled(&browser).await?;
    let state = browser
        .eval_async(
            "const r = await navigator.serviceWorker.getRegistration(); return r.active.state;",
        )
        .await?;
    assert_eq!(state, "activated");
    let manifest = browser
        .eval_async(
            "const r = await fetch('manifest.webmanifest'); return (await r.json()).icons.length;",
        )
        .await?;
    assert_eq!(manifest, 3);
    browser.close().await
}

#[tokio::test]
async fn webgpu_adapter_is_found_and_runs_an_engine_kernel() -> anyhow::Result<()> {
    let server = Server::start()?;
    let browser = open_kiosk(&server).await?;
    let state = browser
        .settled_state("#gpu-status", &["checking"], GPU_CHECK)
        .await?;
    let text = browser.text("#gpu-status").await?;
    assert_eq!(state, "ready", "{text}");
    assert!(text.contains("self-test passed"), "{text}");
    let adapter = browser
        .eval_async("const a = await navigator.gpu.requestAdapter(); return a !== null;")
        .await?;
    assert_eq!(adapter, true);

    // The shipped defect model loads from the build and runs one frame on that GPU.
    let state = browser
        .settled_state("#model-status", &["loading"], MODEL_LOAD)
        .await?;
    let text = browser.text("#model-status").await?;
    assert_eq!(state, "ready", "{text}");
    assert!(
        text.contains("scratch, dent, crack, stain, pore (320x320)"),
        "{text}"
    );
    assert!(text.contains("on the GPU"), "{text}");
    println!("kiosk model status: {text}");
    browser.close().await
}

#[tokio::test]
async fn station_settings_written_to_indexeddb_survive_a_reload() -> anyhow::Result<()> {
    let server = Server::start()?;
    let browser = open_kiosk(&server).await?;
    save_station(&browser, "ST-04", "Line 2", "badge 1182").await?;
    browser.client.refresh().await?;
    assert_station_shown(&browser, "ST-04", "Line 2", "badge 1182").await?;
    assert!(browser.text("header").await?.contains("ST-04 · Line 2"));
    browser.close().await
}

#[tokio::test]
async fn the_kiosk_starts_with_the_server_gone_after_one_visit() -> anyhow::Result<()> {
    let server = Server::start()?;
    let url = server.url.clone();
    let browser = open_kiosk(&server).await?;
    wait_until_controlled(&browser).await?;
    save_station(&browser, "ST-09", "Paint", "Jana").await?;
    let _data = server.kill();
    let reachable = browser
        .eval_async("try { await fetch('healthz'); return true; } catch { return false; }")
        .await?;
    assert_eq!(reachable, false, "the server should be down");
    browser.show_app_shell(&url).await?;
    assert_station_shown(&browser, "ST-09", "Paint", "Jana").await?;
    browser.close().await
}
