use crate::{
    gpu_check::{self, GpuStatus},
    model::{self, ModelStatus},
    service_worker::{self, ServiceWorkerStatus},
    storage::{self, StationSettings},
    sync,
    sync_status::SyncStatus,
};
use web_sys::HtmlInputElement;
use yew::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum SaveState {
    Loading,
    Idle,
    Saving,
    Saved,
    Failed(String),
}

#[function_component(App)]
pub fn app() -> Html {
    let settings = use_state(StationSettings::default);
    let save_state = use_state(|| SaveState::Loading);
    let sw_status = use_state(|| ServiceWorkerStatus::Registering);
    let gpu_status = use_state(|| GpuStatus::Checking);
    let model_status = use_state(|| ModelStatus::Loading);

    {
        let (settings, save_state, sw_status, gpu_status, model_status) = (
            settings.clone(),
            save_state.clone(),
            sw_status.clone(),
            gpu_status.clone(),
            model_status.clone(),
        );
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                let loaded = match storage::open().await {
                    Ok(db) => {
                        let loaded = storage::load_station(&db).await;
                        sync::start(db);
                        loaded
                    }
                    Err(e) => Err(e),
                };
                match loaded {
                    Ok(stored) => {
                        settings.set(stored.unwrap_or_default());
                        save_state.set(SaveState::Idle);
                    }
                    Err(e) => save_state.set(SaveState::Failed(e)),
                }
            });
            wasm_bindgen_futures::spawn_local(async move {
                sw_status.set(service_worker::register().await);
            });
            wasm_bindgen_futures::spawn_local(async move {
                let (status, gpu) = gpu_check::check().await;
                gpu_status.set(status);
                model_status.set(model::load(gpu.as_ref()).await);
            });
        });
    }

    let field = |name: &'static str, label: &'static str, value: String| {
        let settings = settings.clone();
        let save_state = save_state.clone();
        let oninput = Callback::from(move |e: InputEvent| {
            let value = e.target_unchecked_into::<HtmlInputElement>().value();
            let mut next = (*settings).clone();
            match name {
                "station" => next.station = value,
                "line" => next.line = value,
                _ => next.operator = value,
            }
            settings.set(next);
            save_state.set(SaveState::Idle);
        });
        html! {
            <>
                <label for={name}>{ label }</label>
                <input id={name} name={name} {value} {oninput} autocomplete="off" />
            </>
        }
    };

    let on_save = {
        let settings = settings.clone();
        let save_state = save_state.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let settings = (*settings).clone();
            let save_state = save_state.clone();
            save_state.set(SaveState::Saving);
            wasm_bindgen_futures::spawn_local(async move {
                let result = match storage::open().await {
                    Ok(db) => storage::save_station(&db, &settings).await,
                    Err(e) => Err(e),
                };
                save_state.set(match result {
                    Ok(()) => SaveState::Saved,
                    Err(e) => SaveState::Failed(e),
                });
            });
        })
    };

    let save_message = match &*save_state {
        SaveState::Loading => html! { <span class="pending">{ "Loading…" }</span> },
        SaveState::Idle => html! {},
        SaveState::Saving => html! { <span class="pending">{ "Saving…" }</span> },
        SaveState::Saved => html! { <span class="ok">{ "Saved on this tablet" }</span> },
        SaveState::Failed(e) => html! { <span class="error">{ format!("Not saved: {e}") }</span> },
    };

    html! {
        <div id="app-shell">
            <header>
                <h1>{ "LineCheck" }</h1>
                <span>{ station_title(&settings) }</span>
                <SyncStatus />
            </header>
            <main>
                <section>
                    <h2>{ "Station setup" }</h2>
                    <form onsubmit={on_save}>
                        { field("station", "Station", settings.station.clone()) }
                        { field("line", "Line", settings.line.clone()) }
                        { field("operator", "Operator (name or badge)", settings.operator.clone()) }
                        <button id="save-station" type="submit"
                            disabled={matches!(*save_state, SaveState::Loading | SaveState::Saving)}>
                            { "Save" }
                        </button>
                        <p id="save-status" data-state={save_state_name(&save_state)}>{ save_message }</p>
                    </form>
                </section>
                <section>
                    <h2>{ "This tablet" }</h2>
                    <dl>
                        <dt>{ "Offline app" }</dt>
                        { service_worker_view(&sw_status) }
                        <dt>{ "Detector" }</dt>
                        { gpu_view(&gpu_status) }
                        <dt>{ "Defect model" }</dt>
                        { model_view(&model_status) }
                    </dl>
                </section>
            </main>
        </div>
    }
}

fn station_title(settings: &StationSettings) -> String {
    if settings.station.is_empty() {
        "Station not set up".into()
    } else {
        format!("{} · {}", settings.station, settings.line)
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

fn service_worker_view(status: &ServiceWorkerStatus) -> Html {
    let (state, class, text) = match status {
        ServiceWorkerStatus::Registering => ("registering", "pending", "Installing…".to_string()),
        ServiceWorkerStatus::Active { controlled: true } => {
            ("active", "ok", "Ready: works without network".to_string())
        }
        ServiceWorkerStatus::Active { controlled: false } => (
            "active",
            "ok",
            "Installed: works without network from the next start".to_string(),
        ),
        ServiceWorkerStatus::Unsupported => (
            "unsupported",
            "error",
            "Unavailable: open LineCheck over HTTPS or on localhost".to_string(),
        ),
        ServiceWorkerStatus::Failed(e) => ("failed", "error", format!("Failed: {e}")),
    };
    html! { <dd id="sw-status" data-state={state} class={class}>{ text }</dd> }
}

fn gpu_view(status: &GpuStatus) -> Html {
    let (state, class, text) = match status {
        GpuStatus::Checking => ("checking", "pending", "Checking the GPU…".to_string()),
        GpuStatus::Ready {
            adapter,
            max_abs_error,
        } => (
            "ready",
            "ok",
            format!("GPU: {adapter} (self-test passed, max error {max_abs_error:.1e})"),
        ),
        GpuStatus::Unavailable(reason) => (
            "unavailable",
            "error",
            format!("CPU (no usable GPU: {reason})"),
        ),
    };
    html! { <dd id="gpu-status" data-state={state} class={class}>{ text }</dd> }
}

fn model_view(status: &ModelStatus) -> Html {
    let (state, class, text) = match status {
        ModelStatus::Loading => (
            "loading",
            "pending",
            "Loading the defect model…".to_string(),
        ),
        ModelStatus::Ready {
            labels,
            input,
            gpu_frame_ms,
        } => (
            "ready",
            "ok",
            format!(
                "{} ({}x{}); {}",
                labels.join(", "),
                input.0,
                input.1,
                match gpu_frame_ms {
                    Some(ms) => format!("first frame {ms:.0} ms on the GPU"),
                    None => "runs on the CPU".to_string(),
                }
            ),
        ),
        ModelStatus::Failed(reason) => ("failed", "error", format!("Not loaded: {reason}")),
    };
    html! { <dd id="model-status" data-state={state} class={class}>{ text }</dd> }
}
