//! Station setup (who, where, which camera, how strict) and what this tablet can do.

use crate::{
    camera::CameraDevice,
    detection::{BackendKind, EngineInfo},
    i18n::{Language, Texts},
    service_worker::ServiceWorkerStatus,
    storage::StationSettings,
};
use protocol::ClassThreshold;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

/// Where the detector is, as the page sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineState {
    Loading { loaded: u64, total: Option<u64> },
    Ready(EngineInfo),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SaveState {
    Loading,
    Idle,
    Saving,
    Saved,
    Failed(String),
}

#[derive(Properties, PartialEq)]
pub struct SetupProps {
    pub texts: &'static Texts,
    pub settings: StationSettings,
    pub save_state: SaveState,
    pub cameras: Vec<CameraDevice>,
    pub engine: EngineState,
    pub sw_status: ServiceWorkerStatus,
    pub on_change: Callback<StationSettings>,
    pub on_save: Callback<()>,
}

const RESOLUTIONS: [(u32, u32); 3] = [(640, 480), (1280, 720), (1920, 1080)];

/// A fraction from a percentage field; `None` for anything outside 1-99 %.
fn threshold_from_percent(text: &str) -> Option<f32> {
    let percent: f32 = text.trim().parse().ok()?;
    (1.0..=99.0).contains(&percent).then(|| percent / 100.0)
}

#[function_component(Setup)]
pub fn setup(props: &SetupProps) -> Html {
    let t = props.texts;
    let settings = &props.settings;
    let edit = |update: fn(&mut StationSettings, String)| {
        let (settings, on_change) = (settings.clone(), props.on_change.clone());
        move |value: String| {
            let mut next = settings.clone();
            update(&mut next, value);
            on_change.emit(next);
        }
    };
    let text_field = |id: &'static str, label: &'static str, value: &str, update| {
        let apply = edit(update);
        let oninput = Callback::from(move |e: InputEvent| {
            apply(e.target_unchecked_into::<HtmlInputElement>().value())
        });
        html! {
            <>
                <label for={id}>{ label }</label>
                <input {id} name={id} value={value.to_string()} {oninput} autocomplete="off" />
            </>
        }
    };
    let select = |id: &'static str,
                  label: &'static str,
                  options: Vec<(String, String)>,
                  selected: String,
                  update| {
        let apply = edit(update);
        let onchange = Callback::from(move |e: Event| {
            apply(e.target_unchecked_into::<HtmlSelectElement>().value())
        });
        html! {
            <>
                <label for={id}>{ label }</label>
                <select {id} {onchange}>
                    { for options.into_iter().map(|(value, text)| html! {
                        <option selected={value == selected} value={value.clone()}>{ text }</option>
                    }) }
                </select>
            </>
        }
    };

    let languages = Language::ALL
        .iter()
        .map(|l| (l.code().to_string(), l.name().to_string()))
        .collect();
    let cameras = std::iter::once((String::new(), t.rear_camera.to_string()))
        .chain(props.cameras.iter().enumerate().map(|(i, c)| {
            let label = if c.label.is_empty() {
                format!("{} {}", t.camera, i + 1)
            } else {
                c.label.clone()
            };
            (c.id.clone(), label)
        }))
        .collect();
    let resolutions = RESOLUTIONS
        .iter()
        .map(|(w, h)| (format!("{w}x{h}"), format!("{w} × {h}")))
        .collect();

    let labels = match &props.engine {
        EngineState::Ready(info) => info.labels.clone(),
        _ => Vec::new(),
    };
    let threshold_field = |id: String, label: String, value: f32, class_id: Option<u32>| {
        let (settings, on_change) = (settings.clone(), props.on_change.clone());
        let onchange = Callback::from(move |e: Event| {
            let input = e.target_unchecked_into::<HtmlInputElement>();
            let Some(threshold) = threshold_from_percent(&input.value()) else {
                input.set_custom_validity("1–99");
                input.report_validity();
                return;
            };
            input.set_custom_validity("");
            let mut next = settings.clone();
            match class_id {
                None => next.default_threshold = threshold,
                Some(class_id) => {
                    next.thresholds.retain(|t| t.class_id != class_id);
                    next.thresholds.push(ClassThreshold {
                        class_id,
                        threshold,
                    });
                    next.thresholds.sort_by_key(|t| t.class_id);
                }
            }
            on_change.emit(next);
        });
        html! {
            <label class="threshold">
                <span>{ label }</span>
                <input id={id} type="number" min="1" max="99" step="1" inputmode="numeric"
                    value={format!("{:.0}", value * 100.0)} {onchange} />
                <span>{ "%" }</span>
            </label>
        }
    };

    let busy = matches!(props.save_state, SaveState::Loading | SaveState::Saving);
    let save_message = match &props.save_state {
        SaveState::Loading => html! { <span class="pending">{ t.loading }</span> },
        SaveState::Idle => html! {},
        SaveState::Saving => html! { <span class="pending">{ t.saving }</span> },
        SaveState::Saved => html! { <span class="ok">{ t.saved_here }</span> },
        SaveState::Failed(e) => {
            html! { <span class="error">{ format!("{}: {e}", t.not_saved) }</span> }
        }
    };
    let on_submit = props.on_save.reform(|e: SubmitEvent| e.prevent_default());

    html! {
        <main class="setup">
            <section>
                <form onsubmit={on_submit}>
                    { text_field("station", t.station, &settings.station, |s, v| s.station = v) }
                    { text_field("line", t.line, &settings.line, |s, v| s.line = v) }
                    { text_field("operator", t.operator, &settings.operator, |s, v| s.operator = v) }
                    { text_field("station-token", t.station_token, &settings.token, |s, v| s.token = v.trim().to_string()) }
                    { select("language", t.language, languages, settings.language.code().to_string(),
                        |s, v| s.language = Language::ALL.into_iter().find(|l| l.code() == v).unwrap_or_default()) }
                    { select("camera-choice", t.camera, cameras, settings.camera_id.clone().unwrap_or_default(),
                        |s, v| s.camera_id = (!v.is_empty()).then_some(v)) }
                    { select("resolution", t.resolution, resolutions,
                        format!("{}x{}", settings.resolution.0, settings.resolution.1),
                        |s, v| if let Some(r) = v.split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?))) { s.resolution = r }) }
                    <fieldset>
                        <legend>{ t.class_thresholds }</legend>
                        { threshold_field("default-threshold".into(), t.default_threshold.into(), settings.default_threshold, None) }
                        { for labels.iter().enumerate().map(|(class_id, label)| threshold_field(
                            format!("threshold-{label}"), label.clone(),
                            settings.threshold_of(class_id as u32), Some(class_id as u32))) }
                    </fieldset>
                    <button id="save-station" type="submit" disabled={busy}>{ t.save }</button>
                    <p id="save-status" data-state={save_state_name(&props.save_state)}>{ save_message }</p>
                </form>
            </section>
            <section>
                <h2>{ t.this_tablet }</h2>
                <dl>
                    <dt>{ t.offline_app }</dt>
                    { service_worker_view(t, &props.sw_status) }
                    <dt>{ t.detector }</dt>
                    { detector_view(t, &props.engine) }
                    <dt>{ t.defect_model }</dt>
                    { model_view(t, &props.engine) }
                </dl>
            </section>
        </main>
    }
}

fn save_state_name(state: &SaveState) -> &'static str {
    match state {
        SaveState::Loading => "loading",
        SaveState::Idle => "idle",
        SaveState::Saving => "saving",
        SaveState::Saved => "saved",
        SaveState::Failed(_) => "failed",
    }
}

fn service_worker_view(t: &Texts, status: &ServiceWorkerStatus) -> Html {
    let (state, class, text) = match status {
        ServiceWorkerStatus::Registering => ("registering", "pending", t.sw_installing.to_string()),
        ServiceWorkerStatus::Active { controlled: true } => {
            ("active", "ok", t.sw_ready.to_string())
        }
        ServiceWorkerStatus::Active { controlled: false } => {
            ("active", "ok", t.sw_next_start.to_string())
        }
        ServiceWorkerStatus::Unsupported => ("unsupported", "error", t.sw_unsupported.to_string()),
        ServiceWorkerStatus::Failed(e) => ("failed", "error", format!("{}: {e}", t.failed)),
    };
    html! { <dd id="sw-status" data-state={state} class={class}>{ text }</dd> }
}

/// "CPU", or "CPU ×4" on four threads.
pub fn cpu_label(info: &EngineInfo) -> String {
    match info.cpu_threads {
        0 | 1 => "CPU".to_string(),
        threads => format!("CPU ×{threads}"),
    }
}

/// The backend line: which one runs, why, and what was measured.
pub fn backend_text(t: &Texts, info: &EngineInfo) -> String {
    let backend = match (&info.backend, &info.gpu) {
        (BackendKind::Gpu, Ok(adapter)) => format!("{}: {adapter}", t.on_gpu),
        (BackendKind::Cpu, Ok(adapter)) => format!("{} {adapter}", t.cpu_faster_than),
        (_, Err(reason)) => format!("{}: {reason}", t.on_cpu),
    };
    let backend = match info.backend {
        BackendKind::Cpu if info.cpu_threads > 1 => format!("{backend} · {}", cpu_label(info)),
        _ => backend,
    };
    let measured: Vec<String> = info
        .measured_ms
        .iter()
        .map(|(kind, ms)| format!("{kind:?} {ms:.0} ms"))
        .collect();
    if measured.is_empty() {
        backend
    } else {
        format!("{backend} ({})", measured.join(", "))
    }
}

fn detector_view(t: &Texts, engine: &EngineState) -> Html {
    // Whether the worker could run wasm threads, and how many its CPU backend got; for diagnosis
    // (and the browser tests).
    let (isolated, cpu_threads) = match engine {
        EngineState::Ready(info) => (
            Some(info.cross_origin_isolated.to_string()),
            Some(info.cpu_threads.to_string()),
        ),
        _ => (None, None),
    };
    let (state, class, text) = match engine {
        EngineState::Loading { .. } => ("checking", "pending", t.loading.to_string()),
        EngineState::Ready(info) => (
            match info.backend {
                BackendKind::Gpu => "gpu",
                BackendKind::Cpu => "cpu",
            },
            "ok",
            backend_text(t, info),
        ),
        EngineState::Failed(reason) => ("failed", "error", format!("{}: {reason}", t.failed)),
    };
    html! {
        <dd id="gpu-status" data-state={state} data-cross-origin-isolated={isolated}
            data-cpu-threads={cpu_threads} class={class}>
            { text }
        </dd>
    }
}

/// Download progress while loading, then the model's classes and cold start.
pub fn progress_text(t: &Texts, loaded: u64, total: Option<u64>) -> String {
    match total {
        Some(total) if loaded >= total => t.detector_measuring.to_string(),
        Some(total) => format!(
            "{} {:.0} % ({:.1} / {:.1} MB)",
            t.detector_loading,
            loaded as f64 * 100.0 / total.max(1) as f64,
            loaded as f64 / 1e6,
            total as f64 / 1e6
        ),
        None => format!("{} {:.1} MB", t.detector_loading, loaded as f64 / 1e6),
    }
}

fn model_view(t: &Texts, engine: &EngineState) -> Html {
    let (state, class, text) = match engine {
        EngineState::Loading { loaded, total } => {
            ("loading", "pending", progress_text(t, *loaded, *total))
        }
        EngineState::Ready(info) => (
            "ready",
            "ok",
            format!(
                "{} {} — {} ({}x{}); {} {:.0} ms",
                info.model.id,
                info.model.version,
                info.labels.join(", "),
                info.input.0,
                info.input.1,
                t.ready_in,
                info.cold_start_ms
            ),
        ),
        EngineState::Failed(reason) => ("failed", "error", format!("{}: {reason}", t.failed)),
    };
    html! { <dd id="model-status" data-state={state} class={class}>{ text }</dd> }
}
