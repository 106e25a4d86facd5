//! The operator station in headless Chromium, its camera playing the synthetic conveyor video
//! (`models/synth/video.py`): boxes on the defective parts, inspections stored in IndexedDB with
//! their snapshots, counters, work with the server gone, and nothing lost when the tab closes.

use linecheck_e2e::{
    Browser, CameraVideo, Server, iou,
    kiosk::{
        LOAD, inspect_part, open_screen, save_station, show_app_shell, stored_inspections,
        wait_until_detector_ready,
    },
};
use std::time::{Duration, Instant};

/// A software GPU or the wasm CPU backend analyses a frame in seconds, not milliseconds.
const BOXES: Duration = Duration::from_secs(240);

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// What the live view shows besides boxes, for a timeout's message: the screen shown, its
/// problem line, the detector's frame count and rate, and the camera's state.
async fn live_view_state(browser: &Browser) -> anyhow::Result<serde_json::Value> {
    browser
        .eval(
            "const text = (s) => { const e = document.querySelector(s); return e ? e.textContent : null; };
             const video = document.querySelector('#camera');
             return { screen: text('nav .tab.active'), problem: text('#live-problem'), rate: text('#detector-rate'),
                      frames: document.querySelector('#detector-rate').dataset.frames || null,
                      camera: video && { ready_state: video.readyState, width: video.videoWidth,
                                         paused: video.paused, in_page: video.isConnected } };",
        )
        .await
}

/// Samples the screen tabs' places for 3 s while analysed frames keep changing the header's
/// rate line: an operator's tap must not land on a tab that moved under the finger (the tabs
/// used to shift with the rate line's width, about 12 times a second).
async fn assert_tabs_stay_put(browser: &Browser) -> anyhow::Result<()> {
    let sample = || async {
        browser
            .eval(
                "return [Array.from(document.querySelectorAll('nav .tab')).map((t) => {
                             const r = t.getBoundingClientRect();
                             return [r.x, r.y, r.width, r.height].map(Math.round).join(',');
                         }).join(' '),
                         document.querySelector('#detector-rate').textContent];",
            )
            .await
    };
    let first = sample().await?;
    let mut rates = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let now = sample().await?;
        assert_eq!(now[0], first[0], "the tabs moved (rate line {})", now[1]);
        rates.insert(now[1].to_string());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::ensure!(rates.len() > 1, "the rate line did not change: {rates:?}");
    Ok(())
}

/// Waits until the live overlay shows at least `min` boxes, returning how many it shows.
async fn wait_for_boxes(browser: &Browser, min: u64, timeout: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let shown = browser
            .eval("const s = document.querySelector('.picture.live svg.boxes'); return s ? Number(s.dataset.boxes) : null;")
            .await?;
        if let Some(n) = shown.as_u64()
            && n >= min
        {
            return Ok(n);
        }
        if Instant::now() >= deadline {
            let page = live_view_state(browser).await?;
            anyhow::bail!(
                "the live view showed no {min} boxes within {timeout:?} (now {shown}; {page})"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until boxes stayed put (within a few pixels: the camera has sensor noise) for three
/// analysed frames in a row: a part standing still under the camera, as at an inspection moment.
async fn wait_for_steady_boxes(browser: &Browser, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let (mut last, mut steady_frames): (Vec<Vec<f64>>, Vec<String>) = (Vec::new(), Vec::new());
    loop {
        let sample = browser
            .eval(
                "const boxes = Array.from(document.querySelectorAll('.picture.live svg.boxes rect'))
                     .map((r) => ['x', 'y', 'width', 'height'].map((a) => Number(r.getAttribute(a))));
                 return [boxes, document.querySelector('#detector-rate').dataset.frames || ''];",
            )
            .await?;
        let boxes: Vec<Vec<f64>> = serde_json::from_value(sample[0].clone())?;
        let frame = sample[1].as_str().unwrap_or_default().to_string();
        let close = |a: &Vec<f64>, b: &Vec<f64>| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 6.0);
        let same = !boxes.is_empty()
            && boxes.len() == last.len()
            && boxes.iter().zip(&last).all(|(a, b)| close(a, b));
        if !same {
            steady_frames.clear();
        }
        if !boxes.is_empty() && !steady_frames.contains(&frame) {
            steady_frames.push(frame);
        }
        last = boxes;
        if steady_frames.len() >= 3 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let page = live_view_state(browser).await?;
            anyhow::bail!(
                "no steady boxes within {timeout:?} (last {} boxes; {page})",
                last.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn counter(browser: &Browser, name: &str) -> anyhow::Result<u64> {
    let value = browser
        .eval(&format!(
            "return Number(document.querySelector('#counters').dataset.{name});"
        ))
        .await?;
    Ok(value.as_u64().unwrap_or_default())
}

#[tokio::test]
async fn boxes_land_on_the_defective_parts_and_each_inspection_is_stored_with_its_snapshot()
-> anyhow::Result<()> {
    let video = CameraVideo::load()?;
    let server = Server::start()?;
    let browser = Browser::start_with_camera(Some(&video.path)).await?;
    show_app_shell(&browser, &server.url).await?;
    save_station(&browser, "ST-01", "Line 1", "Eva").await?;
    let backend = wait_until_detector_ready(&browser).await?;
    println!("detector: {backend}");
    open_screen(&browser, "inspect").await?;
    wait_for_boxes(&browser, 0, BOXES).await?;
    assert_tabs_stay_put(&browser).await?;

    // Parts judged as boxes are shown, until two were failed while a defective part stood still
    // (the inspection moment). The belt keeps moving, so Inspect may catch a frame in motion:
    // each stored snapshot is matched to its video frame and judged against that frame's truth.
    let mut still_fails = 0;
    let mut inspected = 0;
    while still_fails < 2 {
        anyhow::ensure!(
            inspected < 12,
            "{inspected} inspections, {still_fails} on a still defective part"
        );
        wait_for_steady_boxes(&browser, BOXES).await?;
        inspected += 1;
        let serial = format!("SN-{inspected}");
        inspect_part(&browser, &serial, "#confirm").await?;
        let rows = stored_inspections(&browser).await?;
        let row = rows
            .iter()
            .find(|r| r["record"]["part_serial"] == serial.as_str())
            .expect("the inspection is stored");
        let record = &row["record"];
        let jpeg = base64_decode(row["jpeg"].as_str().expect("every record has its snapshot"));
        let (truth, likeness) = video.frame_of(&jpeg)?;
        println!(
            "{serial}: frame {} (correlation {likeness:.4}), {}",
            truth.frame, record["verdict"]
        );
        assert!(
            likeness > 0.98,
            "{serial}: the snapshot matches no video frame (best correlation {likeness:.4})"
        );
        if !truth.still {
            // Parts half in view and in motion: not an inspection moment the model is held to.
            continue;
        }
        if truth.boxes.is_empty() {
            assert_eq!(
                record["verdict"], "pass",
                "{serial}: frame {} has no defect",
                truth.frame
            );
            continue;
        }
        assert_eq!(
            record["verdict"], "fail",
            "{serial}: frame {} shows defects",
            truth.frame
        );
        let threshold = record["default_threshold"].as_f64().unwrap_or(0.25);
        for detection in record["detections"].as_array().into_iter().flatten() {
            if detection["score"].as_f64().unwrap_or_default() < threshold {
                continue;
            }
            let b = &detection["bbox"];
            let bbox = ["x1", "y1", "x2", "y2"].map(|k| b[k].as_f64().unwrap_or_default() as f32);
            let best = truth
                .boxes
                .iter()
                .map(|t| iou(bbox, t.bbox))
                .fold(0.0, f32::max);
            assert!(
                best >= 0.3,
                "{serial}: {} at {bbox:?} in frame {} overlaps no real defect (best IoU {best:.2}; truth {:?})",
                detection["label"],
                truth.frame,
                truth.boxes
            );
        }
        still_fails += 1;
    }
    inspect_part(&browser, "SN-UNSURE", "#unsure").await?;
    assert_eq!(counter(&browser, "parts").await?, inspected + 1);
    assert_eq!(counter(&browser, "unsure").await?, 1);
    assert_eq!(
        stored_inspections(&browser).await?.len() as u64,
        inspected + 1,
        "one row per inspection"
    );
    browser.close().await
}

#[tokio::test]
async fn inspections_go_on_with_the_server_gone_and_a_closed_tab_loses_nothing()
-> anyhow::Result<()> {
    let video = CameraVideo::load()?;
    let server = Server::start()?;
    let url = server.url.clone();
    let browser = Browser::start_with_camera(Some(&video.path)).await?;
    show_app_shell(&browser, &url).await?;
    save_station(&browser, "ST-02", "Line 1", "Ota").await?;
    wait_until_detector_ready(&browser).await?;

    // The server dies; the kiosk reloads from its service worker and still inspects.
    let _data = server.kill();
    show_app_shell(&browser, &url).await?;
    wait_until_detector_ready(&browser).await?;
    open_screen(&browser, "inspect").await?;
    wait_for_boxes(&browser, 0, BOXES).await?;
    inspect_part(&browser, "OFF-1", "#confirm").await?;
    assert_eq!(counter(&browser, "parts").await?, 1);

    // Saved means committed: closing the tab at once keeps the record.
    inspect_part(&browser, "OFF-2", "#confirm").await?;
    let first = browser.client.window().await?;
    browser.client.new_window(true).await?;
    browser.client.close_window().await?;
    let remaining = browser.client.windows().await?;
    anyhow::ensure!(!remaining.contains(&first), "the kiosk tab is still open");
    browser
        .client
        .switch_to_window(remaining[0].clone())
        .await?;
    show_app_shell(&browser, &url).await?;
    let serials: Vec<String> = stored_inspections(&browser)
        .await?
        .iter()
        .map(|row| {
            row["record"]["part_serial"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(serials.len(), 2, "{serials:?}");
    assert!(serials.contains(&"OFF-1".into()) && serials.contains(&"OFF-2".into()));
    browser.close().await
}

#[tokio::test]
async fn an_unplugged_camera_is_reported_and_the_kiosk_reconnects_by_itself() -> anyhow::Result<()>
{
    let video = CameraVideo::load()?;
    let server = Server::start()?;
    let browser = Browser::start_with_camera(Some(&video.path)).await?;
    show_app_shell(&browser, &server.url).await?;
    save_station(&browser, "ST-03", "Line 1", "Kai").await?;
    wait_until_detector_ready(&browser).await?;
    open_screen(&browser, "inspect").await?;
    wait_for_boxes(&browser, 0, BOXES).await?;

    // What the browser does when a USB camera is pulled: the track ends and says so.
    browser
        .eval(
            "const camera = document.querySelector('#camera');
             camera.dataset.unplugged = 'yes';
             for (const track of camera.srcObject.getTracks()) {
                 track.stop();
                 track.dispatchEvent(new Event('ended'));
             }",
        )
        .await?;
    browser.wait_for("#live-problem", LOAD).await?;
    let problem = browser.text("#live-problem").await?;
    assert!(problem.contains("camera stopped"), "{problem}");
    assert_eq!(
        browser
            .eval("return document.querySelector('.picture.live svg.boxes');")
            .await?,
        serde_json::Value::Null,
        "the boxes of the last frame went with the camera"
    );
    anyhow::ensure!(
        browser
            .eval("return document.querySelector('#inspect').disabled;")
            .await?
            == true,
        "no inspection without a camera"
    );

    // The camera is opened again a few seconds later, shown, and analysed.
    wait_for_boxes(&browser, 0, BOXES).await?;
    let camera = browser
        .eval(
            "const camera = document.querySelector('#camera');
             return [camera.dataset.unplugged || null, camera.isConnected, camera.srcObject.active];",
        )
        .await?;
    assert_eq!(
        camera,
        serde_json::json!([null, true, true]),
        "a new camera in the page"
    );
    assert!(
        browser
            .eval("return document.querySelector('#live-problem');")
            .await?
            .is_null()
    );

    // Another screen takes the video out of the page, which pauses it; back on Inspect it plays.
    open_screen(&browser, "setup").await?;
    open_screen(&browser, "inspect").await?;
    let frames = || async {
        let shown = browser
            .eval("return Number(document.querySelector('#detector-rate').dataset.frames);")
            .await?;
        anyhow::Ok(shown.as_u64().unwrap_or_default())
    };
    let back_at = frames().await?;
    let deadline = Instant::now() + BOXES;
    while frames().await? < back_at + 2 {
        let page = live_view_state(&browser).await?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "no frames after coming back: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let playing = browser
        .eval("const camera = document.querySelector('#camera'); return [camera.isConnected, camera.paused];")
        .await?;
    assert_eq!(
        playing,
        serde_json::json!([true, false]),
        "the camera plays on"
    );
    browser.close().await
}
