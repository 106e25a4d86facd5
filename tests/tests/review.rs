//! The supervisors' review screen against the real server: a supervisor created with the server's
//! own command logs in on the page, two stations' inspections are pushed through the sync API
//! from the page (station tokens from `POST /api/v1/stations`), and then the filters change the
//! table and the charts, "more" follows the server's cursor, a snapshot opens with its boxes,
//! the CSV export holds exactly the filtered rows, a correction made on the snapshot reaches
//! the station's pull, a missed defect drawn on the snapshot with real pointer input reaches the
//! pull and the training set's labels, and after a reload the evidence lists the corrections and
//! the audit view names who made them.

use anyhow::Context;
use linecheck_e2e::{
    Browser, Server,
    kiosk::{LOAD, open_screen, show_app_shell},
    supervisor::{PASSWORD, add_supervisor, page},
};
use serde_json::{Value, json};
use std::time::Instant;

/// ST-01: 6 inspections on 2026-11-23, with snapshots; odd ones have a scratch and fail.
const ST01_RECORDS: u32 = 6;
/// ST-02: 54 inspections on 2026-11-24, no snapshots; all but every third have a dent and fail.
const ST02_RECORDS: u32 = 54;
const ST02_FAILED: usize = 36;

/// A 640x480 JPEG: the snapshot every ST-01 record names.
fn snapshot_jpeg() -> anyhow::Result<Vec<u8>> {
    let pixels: Vec<u8> = (0..640 * 480)
        .flat_map(|i| {
            let v = ((i % 640) / 3) as u8;
            [v, 128, 255 - v]
        })
        .collect();
    let mut jpeg = vec![];
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80).encode(
        &pixels,
        640,
        480,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(jpeg)
}

/// One station's records as the sync protocol carries them (`snapshot` is added in the page).
fn records(station: &str, device: u32, count: u32) -> Vec<Value> {
    (1..=count)
        .map(|n| {
            let (start, step_minutes, line, operator) = if station == "ST-01" {
                ("2026-11-23T06:00:00", 60, "Line 1", "ana")
            } else {
                ("2026-11-24T06:00:00", 15, "Line 2", "ben")
            };
            let start = add_minutes(start, step_minutes * n);
            let detection = |label: &str, class_id: u32, x: f32| {
                json!({ "class_id": class_id, "label": label, "score": 0.9,
                        "bbox": { "x1": x, "y1": 100.0, "x2": x + 80.0, "y2": 160.0 } })
            };
            let detections = match station {
                "ST-01" if n % 2 == 1 => vec![detection("scratch", 0, 40.0 * n as f32)],
                "ST-02" if n % 3 != 0 => vec![detection("dent", 1, 300.0)],
                _ => vec![],
            };
            json!({
                "id": format!("00000000-0000-4000-8000-{device:04}{n:08}"),
                "device_id": format!("00000000-0000-4000-8000-{device:012}"),
                "sequence": n,
                "inspected_at": format!("{start}Z"),
                "local_time": format!("{start}+00:00"),
                "station": station,
                "line": line,
                "operator": operator,
                "part_serial": format!("SN-{station}-{n:03}"),
                "lot": format!("LOT-{}", n % 2),
                "model": { "id": "linecheck-defects", "version": "3" },
                "default_threshold": 0.5,
                "thresholds": [],
                "verdict": if detections.is_empty() { "pass" } else { "fail" },
                "detections": detections,
                "decision": { "kind": "confirmed" },
            })
        })
        .collect()
}

/// `start` (`YYYY-MM-DDTHH:MM:SS`, whole hours) plus `minutes`, within the same day.
fn add_minutes(start: &str, minutes: u32) -> String {
    let hour: u32 = start[11..13].parse().expect("an hour");
    let total = hour * 60 + minutes;
    assert!(total < 24 * 60, "{start} + {minutes} min leaves the day");
    format!("{}T{:02}:{:02}:00", &start[..10], total / 60, total % 60)
}

/// The table rows of a `shown` state.
fn rows(state: &Value) -> &[Value] {
    state["rows"].as_array().expect("rows")
}

/// Asserts that every row shown is of `station`, and of `verdict` when given.
fn assert_rows_of(state: &Value, station: &str, verdict: Option<&str>) {
    for row in rows(state) {
        assert_eq!(row["station"], station, "{state}");
        if let Some(verdict) = verdict {
            assert_eq!(row["verdict"], verdict, "{state}");
        }
    }
}

/// Waits for `selector` and returns its text.
async fn wait_text(browser: &Browser, selector: &str) -> anyhow::Result<String> {
    Ok(browser
        .client
        .wait()
        .at_most(LOAD)
        .for_element(fantoccini::Locator::Css(selector))
        .await
        .with_context(|| format!("waiting for {selector}"))?
        .text()
        .await?)
}

/// Everything the station of `token` pulls from the start (`GET /api/v1/sync/pull`).
async fn pull(browser: &Browser, token: &str) -> anyhow::Result<Value> {
    page(
        browser,
        &format!(
            "const r = await fetch('api/v1/sync/pull?protocol_version=1&since=0', {{ headers: {{ authorization: 'Bearer {token}' }} }});
             if (!r.ok) throw new Error(r.status + ' ' + await r.text());
             return await r.json();"
        ),
    )
    .await
}

/// Waits until the models section reports success naming `expected`; fails on its error.
async fn wait_for_message(browser: &Browser, expected: &str) -> anyhow::Result<()> {
    // The server loads and runs an uploaded model once before it answers.
    let deadline = Instant::now() + std::time::Duration::from_secs(240);
    loop {
        let message = browser
            .eval(
                "const el = document.querySelector('#models-message');
                 return el ? { text: el.textContent, error: el.classList.contains('error') } : null;",
            )
            .await?;
        if message["error"] == true {
            anyhow::bail!("{}", message["text"]);
        }
        if message["text"]
            .as_str()
            .is_some_and(|t| t.contains(expected))
        {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "no {expected:?} in {message}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Sets an input's or a select's value as a supervisor's edit would, and lets the app see the
/// change.
async fn set_value(browser: &Browser, selector: &str, value: &str) -> anyhow::Result<()> {
    browser
        .eval(&format!(
            "const el = document.querySelector({selector:?});
             el.value = {value:?};
             el.dispatchEvent(new Event('change', {{ bubbles: true }}));
             return true;"
        ))
        .await?;
    Ok(())
}

/// What the table and charts show: rows (id, station, verdict), whether "more" is offered, and
/// the charts' numbers.
async fn shown(browser: &Browser) -> anyhow::Result<Value> {
    browser
        .eval(
            "const table = document.querySelector('#review-table');
             const chart = (id, name) => { const el = document.querySelector(id); return el ? el.dataset[name] : null; };
             return {
                 query: table ? table.dataset.query : null,
                 rows: table ? Array.from(table.querySelectorAll('tr.review-row'), (tr) => ({
                     id: tr.dataset.id, station: tr.children[1].textContent, verdict: tr.dataset.verdict })) : [],
                 more: !!document.querySelector('#review-more'),
                 chartsQuery: chart('#review-charts', 'query'),
                 hourInspections: chart('#chart-per-hour', 'inspections'),
                 hourFailed: chart('#chart-per-hour', 'failed'),
                 shiftInspections: chart('#chart-per-shift', 'inspections'),
                 yieldDays: chart('#chart-yield', 'days'),
                 paretoClasses: chart('#chart-pareto', 'classes'),
                 paretoDetections: chart('#chart-pareto', 'detections'),
                 heatmapTotal: chart('#chart-heatmap', 'total'),
                 csv: document.querySelector('#review-csv') && document.querySelector('#review-csv').getAttribute('href'),
             };",
        )
        .await
}

/// Waits until the table and the charts show `query`'s answer, the table with `rows` rows.
async fn wait_for_rows(browser: &Browser, query: &str, rows: usize) -> anyhow::Result<Value> {
    let deadline = Instant::now() + LOAD;
    loop {
        let state = shown(browser).await?;
        if state["query"] == query
            && state["chartsQuery"] == query
            && state["rows"].as_array().map(Vec::len) == Some(rows)
        {
            return Ok(state);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "never showed {rows} rows for {query:?}: {state}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The snapshot's size, as `snapshot_jpeg` makes it.
const SNAPSHOT: (f64, f64) = (640.0, 480.0);
/// Where on the snapshot (its pixels: x1, y1, x2, y2) the missed defect is drawn, away from the
/// detection.
const MISSED_BOX: [f64; 4] = [330.0, 260.0, 450.0, 340.0];

/// Marks a missed scratch on the opened snapshot of `inspection` with the mouse, as real pointer
/// input; the box the drag should give, in snapshot pixels.
async fn mark_missed_defect(browser: &Browser, inspection: &str) -> anyhow::Result<[f64; 4]> {
    browser.click("#missed-mark").await?;
    wait_text(browser, "#missed-hint").await?;
    browser
        .eval("document.querySelector('tr.review-detail .picture').scrollIntoView({ block: 'center' }); return true;")
        .await?;
    // A slip of the pointer is no box: the hint says so. Cancel discards the marking.
    let layer = browser
        .eval(
            "const r = document.querySelector('tr.review-detail svg.draw-layer').getBoundingClientRect();
             return [Math.round(r.left + r.width / 2), Math.round(r.top + r.height / 2)];",
        )
        .await?;
    let centre = (layer[0].as_i64().expect("x"), layer[1].as_i64().expect("y"));
    browser
        .press_and_drag(centre, (centre.0 + 2, centre.1 + 2))
        .await?;
    browser.release_mouse().await?;
    wait_text(browser, "#missed-hint.error").await?;
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#missed-save"))
            .await
            .is_err(),
        "a slip offers no Save"
    );
    browser.click("#missed-cancel").await?;
    wait_text(browser, "#missed-mark").await?;
    let cancelled = browser
        .eval(
            "const detail = document.querySelector('tr.review-detail');
             return { layer: !!detail.querySelector('svg.draw-layer'),
                      corrections: detail.querySelectorAll('li.correction').length };",
        )
        .await?;
    assert_eq!(cancelled, json!({ "layer": false, "corrections": 1 }));

    browser.click("#missed-mark").await?;
    wait_text(browser, "#missed-hint").await?;
    // How the screen maps to snapshot pixels, read from the detection's drawn box (its SVG
    // attributes are snapshot pixels): independent of the app's own conversion.
    let geometry = browser
        .eval(
            "const detail = document.querySelector('tr.review-detail');
             detail.querySelector('.picture').scrollIntoView({ block: 'center' });
             const rect = detail.querySelector('svg.boxes g.box rect');
             const r = rect.getBoundingClientRect();
             return { left: r.left, top: r.top, width: r.width, height: r.height,
                      x: rect.x.baseVal.value, y: rect.y.baseVal.value,
                      w: rect.width.baseVal.value, h: rect.height.baseVal.value };",
        )
        .await?;
    let number = |name: &str| geometry[name].as_f64().expect("a number");
    let scale = (
        number("width") / number("w"),
        number("height") / number("h"),
    );
    let to_screen = |x: f64, y: f64| {
        (
            (number("left") + (x - number("x")) * scale.0).round() as i64,
            (number("top") + (y - number("y")) * scale.1).round() as i64,
        )
    };
    let to_snapshot = |(x, y): (i64, i64)| {
        (
            number("x") + (x as f64 - number("left")) / scale.0,
            number("y") + (y as f64 - number("top")) / scale.1,
        )
    };
    let from = to_screen(MISSED_BOX[0], MISSED_BOX[1]);
    let to = to_screen(MISSED_BOX[2], MISSED_BOX[3]);
    let (start, end) = (to_snapshot(from), to_snapshot(to));
    let expected = [start.0, start.1, end.0, end.1];

    // While the button is down the rectangle follows the pointer.
    browser.press_and_drag(from, to).await?;
    let dragging = browser
        .eval(
            "const layer = document.querySelector('tr.review-detail svg.draw-layer');
             const draft = layer && layer.querySelector('rect.draft-box');
             return { dragging: layer && layer.dataset.dragging, box: draft && draft.dataset.box };",
        )
        .await?;
    assert_eq!(dragging["dragging"], "true", "{dragging}");
    browser.release_mouse().await?;
    wait_text(browser, "#missed-save").await?;
    let draft = browser
        .eval("return document.querySelector('tr.review-detail rect.draft-box').dataset.box;")
        .await?;
    let draft: Vec<f64> = draft
        .as_str()
        .expect("the drawn box")
        .split(' ')
        .map(|v| v.parse().expect("a number"))
        .collect();
    for (drawn, expected) in draft.iter().zip(expected) {
        assert!((drawn - expected).abs() <= 1.0, "{draft:?} vs {expected:?}");
    }
    set_value(browser, "#missed-class", "0").await?;
    browser.click("#missed-save").await?;

    // Saved: a supervisor-added box on the snapshot, and the second correction listed.
    let deadline = Instant::now() + LOAD;
    let shown = loop {
        let shown = browser
            .eval(&format!(
                "const detail = document.querySelector('tr.review-detail[data-id=\"{inspection}\"]');
                 const boxes = detail && detail.querySelector('svg.boxes');
                 const list = detail && detail.querySelector('ul.corrections');
                 return boxes && boxes.dataset.added === '1' && list && list.dataset.count === '2' ? {{
                     added: Array.from(boxes.querySelectorAll('g.box.added'), (g) => g.dataset.label),
                     deleted: boxes.querySelectorAll('g.box.deleted').length,
                     drawing: !!detail.querySelector('svg.draw-layer'),
                     corrections: Array.from(list.children, (li) => li.textContent) }} : null;"
            ))
            .await?;
        if !shown.is_null() {
            break shown;
        }
        anyhow::ensure!(Instant::now() < deadline, "the missed defect never showed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(shown["added"], json!(["scratch"]), "{shown}");
    assert_eq!(shown["deleted"], 1, "{shown}");
    assert_eq!(shown["drawing"], false, "{shown}");
    assert!(
        shown["corrections"][1]
            .as_str()
            .is_some_and(|t| t.contains("maria: added missed defect scratch")),
        "{shown}"
    );
    Ok(expected)
}

/// The training-set export (under the current filters) labels `inspection`'s image with the
/// missed defect alone (its one detection was deleted): class 0 and `expected` normalised,
/// within a pixel.
async fn assert_label_file(
    browser: &Browser,
    inspection: &str,
    expected: &[f64; 4],
) -> anyhow::Result<()> {
    let zip = page(
        browser,
        "const response = await fetch(document.querySelector('#review-training-set').href);
         if (!response.ok) throw new Error(response.status + ' ' + await response.text());
         return Array.from(new Uint8Array(await response.arrayBuffer()));",
    )
    .await?;
    let bytes: Vec<u8> = serde_json::from_value(zip)?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))?;
    let names = archive
        .file_names()
        .map(|name| name.map(|n| n.into_owned()))
        .collect::<Result<Vec<String>, _>>()?;
    let name = names
        .iter()
        .find(|n| n.starts_with("labels/") && n.ends_with(&format!("/{inspection}.txt")))
        .ok_or_else(|| anyhow::anyhow!("no label file for {inspection} in {names:?}"))?
        .clone();
    let mut labels = String::new();
    std::io::Read::read_to_string(&mut archive.by_name(&name)?, &mut labels)?;
    let lines: Vec<&str> = labels.lines().collect();
    assert_eq!(lines.len(), 1, "{name}: {labels}");
    let fields: Vec<f64> = lines[0]
        .split(' ')
        .map(|v| v.parse().expect("a number"))
        .collect();
    let [x1, y1, x2, y2] = *expected;
    let (w, h) = SNAPSHOT;
    let want = [
        0.0,
        (x1 + x2) / 2.0 / w,
        (y1 + y2) / 2.0 / h,
        (x2 - x1) / w,
        (y2 - y1) / h,
    ];
    assert_eq!(fields[0], 0.0, "the class: {labels}");
    for (i, (got, want)) in fields.iter().zip(want).enumerate().skip(1) {
        let pixel = if i % 2 == 1 { 1.0 / w } else { 1.0 / h };
        assert!((got - want).abs() <= pixel, "{name}: {labels} vs {want:?}");
    }
    Ok(())
}

/// After a reload, `inspection` opened again lists both corrections and draws its boxes as
/// corrected; the audit trail names the supervisor for each.
async fn check_after_reload(browser: &Browser, url: &str, inspection: &str) -> anyhow::Result<()> {
    show_app_shell(browser, url).await?;
    open_screen(browser, "review").await?;
    wait_text(browser, "#review-table").await?;
    set_value(browser, "#review-to", "2026-11-23").await?;
    wait_for_rows(browser, "to=2026-11-24T00%3A00%3A00Z", 6).await?;
    browser
        .click(&format!("tr.review-row[data-id='{inspection}']"))
        .await?;
    wait_text(browser, "tr.review-detail ul.corrections[data-count='2']").await?;
    let reopened = browser
        .eval(
            "const detail = document.querySelector('tr.review-detail');
             const boxes = detail.querySelector('svg.boxes');
             return { kinds: Array.from(detail.querySelectorAll('li.correction'), (li) => li.dataset.kind),
                      texts: Array.from(detail.querySelectorAll('li.correction'), (li) => li.textContent),
                      added: boxes ? boxes.dataset.added : null,
                      deleted: boxes ? boxes.querySelectorAll('g.box.deleted').length : null };",
        )
        .await?;
    assert_eq!(
        reopened["kinds"],
        json!(["delete", "missed_defect"]),
        "{reopened}"
    );
    assert!(
        reopened["texts"][0]
            .as_str()
            .is_some_and(|t| t.contains("maria: deleted scratch 90%")),
        "{reopened}"
    );
    // The boxes wait for the image.
    wait_text(
        browser,
        "tr.review-detail svg.boxes[data-added='1'] g.box.deleted",
    )
    .await?;

    // The audit view, newest first: the missed defect, then the deletion, both maria's.
    wait_text(browser, "#audit-table tr.audit-row").await?;
    let audit = browser
        .eval(
            "return Array.from(document.querySelectorAll('#audit-table tr.audit-row'), (tr) => ({
                 kind: tr.dataset.kind, seq: tr.dataset.seq,
                 supervisor: tr.querySelector('.audit-supervisor').textContent,
                 subject: tr.querySelector('.audit-subject').textContent,
                 what: tr.querySelector('.audit-what').textContent }));",
        )
        .await?;
    let rows = audit.as_array().expect("audit rows");
    assert_eq!(rows.len(), 2, "{audit}");
    for (row, (seq, what)) in rows
        .iter()
        .zip([("2", "added missed defect scratch"), ("1", "deleted #0")])
    {
        assert_eq!(row["kind"], "correct_inspection", "{audit}");
        assert_eq!(row["seq"], seq, "{audit}");
        assert_eq!(row["supervisor"], "maria", "{audit}");
        assert_eq!(row["subject"], inspection, "{audit}");
        assert!(
            row["what"].as_str().is_some_and(|t| t.contains(what)),
            "{audit}"
        );
    }
    // The same from the endpoint, filtered by kind and supervisor.
    let listed = page(
        browser,
        "const response = await fetch('api/v1/audit?kind=correct_inspection&supervisor=maria');
         if (!response.ok) throw new Error(response.status + ' ' + await response.text());
         return await response.json();",
    )
    .await?;
    assert_eq!(
        listed["entries"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert_eq!(
        listed["entries"][0]["change"]["details"]["kind"], "missed_defect",
        "{listed}"
    );
    assert_eq!(listed["entries"][0]["supervisor"], "maria", "{listed}");
    Ok(())
}

#[tokio::test]
async fn supervisors_filter_history_see_charts_and_snapshots_and_export_csv() -> anyhow::Result<()>
{
    let server = Server::start()?;
    add_supervisor(&server, "maria")?;
    let browser = Browser::start().await?;
    show_app_shell(&browser, &server.url).await?;

    // Not logged in: the review screen asks for a login; a wrong password is refused.
    open_screen(&browser, "review").await?;
    wait_text(&browser, "#review-login").await?;
    browser.type_into("#review-name", "maria").await?;
    browser.type_into("#review-password", "wrong").await?;
    browser.click("#review-login").await?;
    let refused = wait_text(&browser, "#review-login-error").await?;
    assert!(refused.contains("401"), "{refused}");
    browser.type_into("#review-password", PASSWORD).await?;
    browser.click("#review-login").await?;
    let who = wait_text(&browser, "#review-supervisor").await?;
    assert!(who.contains("maria"), "{who}");

    // Two stations push their records, with the session made by that login.
    let jpeg = snapshot_jpeg()?;
    let pushed = page(
        &browser,
        &format!(
            "const json = (r) => r.ok ? r.json() : r.text().then((t) => {{ throw new Error(r.status + ' ' + t); }});
             const enroll = (station) => fetch('api/v1/stations', {{ method: 'POST',
                 headers: {{ 'content-type': 'application/json' }}, body: JSON.stringify({{ station }}) }}).then(json);
             const jpeg = new Uint8Array({jpeg});
             const sha256 = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', jpeg)),
                 (b) => b.toString(16).padStart(2, '0')).join('');
             const first = await enroll('ST-01'), second = await enroll('ST-02');
             await fetch('api/v1/snapshots/' + sha256, {{ method: 'PUT',
                 headers: {{ 'content-type': 'image/jpeg', authorization: 'Bearer ' + first.token }}, body: jpeg }}).then(json);
             const push = (token, records) => fetch('api/v1/sync/push', {{ method: 'POST',
                 headers: {{ 'content-type': 'application/json', authorization: 'Bearer ' + token }},
                 body: JSON.stringify({{ protocol_version: 1, device_id: records[0].device_id, records }}) }}).then(json);
             const withSnapshots = {st01}.map((r) => ({{ ...r, snapshot: {{ sha256, byte_len: jpeg.length }} }}));
             const results = [...(await push(first.token, withSnapshots)).results,
                              ...(await push(second.token, {st02})).results];
             return {{ st01Token: first.token, statuses: results.map((r) => r.status) }};",
            jpeg = serde_json::to_string(&jpeg)?,
            st01 = Value::Array(records("ST-01", 1, ST01_RECORDS)),
            st02 = Value::Array(records("ST-02", 2, ST02_RECORDS)),
        ),
    )
    .await?;
    let statuses = pushed["statuses"].as_array().expect("push results");
    let st01_token = pushed["st01Token"]
        .as_str()
        .expect("ST-01's token")
        .to_string();
    assert_eq!(statuses.len(), (ST01_RECORDS + ST02_RECORDS) as usize);
    assert!(statuses.iter().all(|s| s == "applied"), "{pushed}");

    // Reopening the screen keeps the session and reads the history: one page, then "more".
    open_screen(&browser, "inspect").await?;
    open_screen(&browser, "review").await?;
    let all = wait_for_rows(&browser, "", 50).await?;
    assert_eq!(all["more"], true, "{all}");
    assert_eq!(all["hourInspections"], "60", "{all}");
    assert_eq!(all["hourFailed"], (ST02_FAILED + 3).to_string(), "{all}");
    assert_eq!(all["shiftInspections"], "60", "{all}");
    assert_eq!(all["yieldDays"], "2", "{all}");
    assert_eq!(all["paretoClasses"], "dent scratch", "{all}");
    assert_eq!(all["paretoDetections"], "36 3", "{all}");
    // Only ST-01's records have snapshots, so only their 3 scratches are placed on the part.
    assert_eq!(all["heatmapTotal"], "3", "{all}");
    browser.click("#review-more").await?;
    let everything = wait_for_rows(&browser, "", 60).await?;
    assert_eq!(everything["more"], false, "{everything}");
    let ids: std::collections::HashSet<&str> = rows(&everything)
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 60, "the second page repeats none of the first");

    // A station and a verdict: the table, the charts and the export follow.
    set_value(&browser, "#review-station", "ST-02").await?;
    let st02 = wait_for_rows(&browser, "station=ST-02", 50).await?;
    assert_rows_of(&st02, "ST-02", None);
    assert_eq!(st02["hourInspections"], "54", "{st02}");
    assert_eq!(st02["paretoClasses"], "dent", "{st02}");
    set_value(&browser, "#review-verdict", "fail").await?;
    let failed = wait_for_rows(&browser, "station=ST-02&verdict=fail", ST02_FAILED).await?;
    assert_eq!(failed["more"], false, "{failed}");
    assert_rows_of(&failed, "ST-02", Some("fail"));
    assert_eq!(failed["hourFailed"], ST02_FAILED.to_string(), "{failed}");
    assert_eq!(failed["yieldDays"], "1", "{failed}");

    // The export link, fetched as the browser would download it, holds exactly those rows.
    let csv = page(
        &browser,
        "const link = document.querySelector('#review-csv');
         if (!link.hasAttribute('download')) throw new Error('the export is not a download link');
         const response = await fetch(link.href);
         if (!response.ok) throw new Error(response.status + ' ' + await response.text());
         return await response.text();",
    )
    .await?;
    let csv = csv.as_str().expect("CSV text");
    let mut lines = csv.lines();
    assert!(lines.next().unwrap_or_default().starts_with("id,"), "{csv}");
    let mut exported: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    let mut listed: Vec<&str> = rows(&failed)
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    exported.sort();
    listed.sort();
    assert_eq!(exported, listed, "{csv}");
    // The training-set export follows the same filters.
    let training_set = page(
        &browser,
        "const link = document.querySelector('#review-training-set');
         const response = await fetch(link.href);
         if (!response.ok) throw new Error(response.status + ' ' + await response.text());
         return { href: link.getAttribute('href'), type: response.headers.get('content-type'),
                  zip: new Uint8Array(await response.arrayBuffer()).slice(0, 2).join(',') };",
    )
    .await?;
    assert_eq!(
        training_set["href"], "api/v1/training-set.zip?station=ST-02&verdict=fail",
        "{training_set}"
    );
    assert_eq!(
        training_set["zip"], "80,75",
        "a zip starts with PK: {training_set}"
    );

    // A date range: only ST-01's day; its snapshot opens with the boxes and the decision.
    set_value(&browser, "#review-station", "").await?;
    set_value(&browser, "#review-verdict", "").await?;
    set_value(&browser, "#review-to", "2026-11-23").await?;
    let first_day = wait_for_rows(&browser, "to=2026-11-24T00%3A00%3A00Z", 6).await?;
    assert_rows_of(&first_day, "ST-01", None);
    assert_eq!(first_day["paretoClasses"], "scratch", "{first_day}");
    assert_eq!(first_day["hourInspections"], "6", "{first_day}");
    browser
        .click("#review-table tr.review-row[data-verdict='fail']")
        .await?;
    let deadline = Instant::now() + LOAD;
    let opened = loop {
        let opened = browser
            .eval(
                "const detail = document.querySelector('tr.review-detail');
                 const img = detail && detail.querySelector('img');
                 const boxes = detail && detail.querySelector('svg.boxes');
                 return detail && img && img.complete && boxes ? {
                     width: img.naturalWidth, boxes: boxes.dataset.boxes,
                     labels: Array.from(boxes.querySelectorAll('g.box'), (g) => g.dataset.label),
                     text: detail.textContent } : null;",
            )
            .await?;
        if !opened.is_null() {
            break opened;
        }
        anyhow::ensure!(Instant::now() < deadline, "the snapshot never opened");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(opened["width"], 640, "{opened}");
    assert_eq!(opened["boxes"], "1", "{opened}");
    assert_eq!(opened["labels"], json!(["scratch"]), "{opened}");
    let text = opened["text"].as_str().unwrap();
    assert!(
        text.contains("confirmed") && text.contains("linecheck-defects 3"),
        "{text}"
    );

    // The supervisor says the scratch is not a defect: the server records it, and the station
    // that made the inspection pulls the correction.
    let inspection = browser
        .eval("return document.querySelector('tr.review-detail').dataset.id;")
        .await?;
    browser.click("tr.review-detail .correct-delete").await?;
    let recorded = wait_text(&browser, "tr.review-detail li.correction").await?;
    assert!(
        recorded.contains("maria: deleted scratch 90%"),
        "{recorded}"
    );
    let pulled = pull(&browser, &st01_token).await?["corrections"].clone();
    assert_eq!(pulled.as_array().map(Vec::len), Some(1), "{pulled}");
    assert_eq!(pulled[0]["inspection_id"], inspection, "{pulled}");
    assert_eq!(
        pulled[0]["action"],
        json!({ "kind": "delete", "detection": 0 }),
        "{pulled}"
    );
    assert_eq!(pulled[0]["supervisor"], "maria", "{pulled}");

    // The supervisor marks a defect the model missed by dragging a box on the snapshot, and it
    // reaches the station's pull, the training set and the audit trail; after a reload the
    // evidence still lists both corrections and draws the boxes as corrected.
    let inspection = inspection.as_str().expect("the opened inspection's id");
    let missed = mark_missed_defect(&browser, inspection).await?;
    let pulled = pull(&browser, &st01_token).await?["corrections"].clone();
    assert_eq!(pulled.as_array().map(Vec::len), Some(2), "{pulled}");
    let action = &pulled[1]["action"];
    assert_eq!(
        (&action["kind"], &action["class_id"], &action["label"]),
        (&json!("missed_defect"), &json!(0), &json!("scratch")),
        "{pulled}"
    );
    for (i, corner) in ["x1", "y1", "x2", "y2"].into_iter().enumerate() {
        let pulled = action["bbox"][corner].as_f64().expect("a coordinate");
        assert!(
            (pulled - missed[i]).abs() <= 1.0,
            "{corner}: {pulled} vs {missed:?}"
        );
    }
    assert_label_file(&browser, inspection, &missed).await?;
    check_after_reload(&browser, &server.url, inspection).await?;

    // A model is uploaded (the server checks it by running it) and assigned with thresholds to
    // ST-01, whose next pull carries them.
    let model = std::path::Path::new(&std::env::var_os("LINECHECK_DIST").expect("set by xtask"))
        .join("linecheck-defects-320-fp16.onnx");
    browser
        .client
        .find(fantoccini::Locator::Css("#model-file"))
        .await?
        .send_keys(&model.canonicalize()?.to_string_lossy())
        .await?;
    browser.type_into("#model-name", "line1-defects").await?;
    browser.type_into("#model-version", "9").await?;
    browser.click("#model-upload").await?;
    wait_for_message(&browser, "line1-defects@9").await?;
    wait_text(&browser, "#assign-model option[value='line1-defects@9']").await?;
    set_value(&browser, "#assign-station", "ST-01").await?;
    set_value(&browser, "#assign-model", "line1-defects@9").await?;
    let first_class = wait_text(&browser, "label[for^='assign-threshold-']").await?;
    set_value(&browser, "#assign-default", "40").await?;
    set_value(&browser, "input[id^='assign-threshold-']", "60").await?;
    browser.click("#assign-model-button").await?;
    wait_for_message(&browser, "ST-01").await?;
    let settings = pull(&browser, &st01_token).await?["settings"].clone();
    assert_eq!(settings["model"]["name"], "line1-defects", "{settings}");
    assert_eq!(settings["model"]["version"], "9", "{settings}");
    let close_to =
        |value: &Value, expected: f64| value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-6);
    assert!(close_to(&settings["default_threshold"], 0.4), "{settings}");
    assert_eq!(
        settings["thresholds"][0]["class_id"], 0,
        "{first_class}: {settings}"
    );
    assert!(
        close_to(&settings["thresholds"][0]["threshold"], 0.6),
        "{settings}"
    );

    // The audit view, refreshed and filtered by kind, shows the upload and the assignment.
    browser.click("#audit-refresh").await?;
    wait_text(&browser, "#audit-table[data-count='4']").await?;
    set_value(&browser, "#audit-kind", "assign_station").await?;
    wait_text(&browser, "#audit-table[data-count='1']").await?;
    let assigned = browser
        .eval(
            "const tr = document.querySelector('#audit-table tr.audit-row');
             return { kind: tr.dataset.kind, seq: tr.dataset.seq, text: tr.textContent };",
        )
        .await?;
    assert_eq!(
        (&assigned["kind"], &assigned["seq"]),
        (&json!("assign_station"), &json!("4")),
        "{assigned}"
    );
    let text = assigned["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("maria") && text.contains("ST-01") && text.contains("line1-defects@9"),
        "{text}"
    );
    set_value(&browser, "#audit-kind", "upload_model").await?;
    let uploaded = wait_text(
        &browser,
        "#audit-table[data-count='1'] tr.audit-row[data-kind='upload_model']",
    )
    .await?;
    assert!(uploaded.contains("line1-defects 9"), "{uploaded}");

    // Logging out ends the session: the screen asks for a login again.
    browser.click("#review-logout").await?;
    wait_text(&browser, "#review-login").await?;
    let after = page(
        &browser,
        "return (await fetch('api/v1/inspections')).status;",
    )
    .await?;
    assert_eq!(after, 401);
    browser.close().await
}
