//! The kiosk in a real headless Chromium against the real server: app shell, service worker,
//! WebGPU through vision-engine, IndexedDB across reloads, a start with the server gone, and
//! cross-origin isolation online and offline.

use linecheck_e2e::{
    Browser, Server,
    kiosk::{
        LOAD, open_kiosk, open_screen, save_station, show_app_shell, wait_until_detector_ready,
        wait_until_settings_loaded,
    },
};

/// Waits for the service worker to be active and in control of the page.
async fn wait_until_controlled(browser: &Browser) -> anyhow::Result<()> {
    open_screen(browser, "setup").await?;
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

async fn assert_station_shown(
    browser: &Browser,
    station: &str,
    line: &str,
    operator: &str,
) -> anyhow::Result<()> {
    wait_until_settings_loaded(browser).await?;
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
async fn the_detector_checks_the_webgpu_adapter_and_loads_the_default_model() -> anyhow::Result<()>
{
    let server = Server::start()?;
    let browser = open_kiosk(&server).await?;
    let adapter = browser
        .eval_async("const a = await navigator.gpu.requestAdapter(); return a !== null;")
        .await?;
    assert_eq!(adapter, true);
    // The worker's kernel self-test passed on SwiftShader, and both backends were measured at
    // this first start (the faster one is used).
    let backend = wait_until_detector_ready(&browser).await?;
    let state = browser
        .settled_state("#gpu-status", &["checking"], LOAD)
        .await?;
    assert!(
        ["gpu", "cpu"].contains(&state.as_str()),
        "{state}: {backend}"
    );
    assert!(backend.contains("WebGPU"), "{backend}");
    assert!(
        backend.contains("Gpu ") && backend.contains("Cpu "),
        "{backend}"
    );
    let model = browser.text("#model-status").await?;
    assert!(
        model.contains("linecheck-defects-320-fp16")
            && model.contains("scratch, dent, crack, stain, pore (320x320)"),
        "{model}"
    );
    println!("kiosk detector: {backend}; model: {model}");
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
    show_app_shell(&browser, &url).await?;
    assert_station_shown(&browser, "ST-09", "Paint", "Jana").await?;
    browser.close().await
}

/// `crossOriginIsolated` in the page and, once the detector is ready, in its detection worker
/// (which reports its own in `#gpu-status`).
async fn assert_cross_origin_isolated(browser: &Browser, when: &str) -> anyhow::Result<()> {
    let page = browser.eval("return self.crossOriginIsolated;").await?;
    assert_eq!(page, true, "the page is not cross-origin isolated {when}");
    let backend = wait_until_detector_ready(browser).await?;
    let worker = browser
        .eval("return document.querySelector('#gpu-status').dataset.crossOriginIsolated;")
        .await?;
    assert_eq!(
        worker, "true",
        "the detection worker is not cross-origin isolated {when} ({backend})"
    );
    // So it runs the threaded build, whose CPU backend takes one thread per core, up to 4.
    let threads = browser
        .eval(
            "return [document.querySelector('#gpu-status').dataset.cpuThreads,
                     String(Math.min(navigator.hardwareConcurrency, 4))];",
        )
        .await?;
    assert_eq!(
        threads[0], threads[1],
        "the CPU backend's threads {when} (got, expected one per core up to 4)"
    );
    Ok(())
}

#[tokio::test]
async fn the_kiosk_and_its_detector_are_cross_origin_isolated_online_and_offline()
-> anyhow::Result<()> {
    let server = Server::start()?;
    let url = server.url.clone();
    let browser = open_kiosk(&server).await?;
    assert_cross_origin_isolated(&browser, "online").await?;
    wait_until_controlled(&browser).await?;
    let _data = server.kill();
    show_app_shell(&browser, &url).await?;
    assert_cross_origin_isolated(&browser, "offline, from the service worker's cache").await?;

    // A cache filled through a server or proxy that dropped the headers: the service worker
    // still answers with them.
    let stripped = browser
        .eval_async(
            "let stripped = 0;
             for (const name of await caches.keys()) {
                 const cache = await caches.open(name);
                 for (const request of await cache.keys()) {
                     const response = await cache.match(request);
                     const headers = new Headers(response.headers);
                     for (const policy of ['opener', 'embedder', 'resource']) {
                         headers.delete(`cross-origin-${policy}-policy`);
                     }
                     await cache.put(request, new Response(await response.blob(), {
                         status: response.status, statusText: response.statusText, headers,
                     }));
                     const kept = await cache.match(request);
                     if (!kept.headers.has('cross-origin-embedder-policy')) stripped += 1;
                 }
             }
             return stripped;",
        )
        .await?;
    assert!(
        stripped.as_u64().is_some_and(|n| n >= 5),
        "the service worker's cache holds too few files: {stripped}"
    );
    show_app_shell(&browser, &url).await?;
    assert_cross_origin_isolated(&browser, "offline, from a cache without the headers").await?;
    browser.close().await
}
