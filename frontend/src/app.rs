//! The kiosk's top level: opens the database, the camera and the detection worker once, keeps
//! them for the page's life, and switches between the inspection, history and setup screens.

use crate::{
    Shared, camera,
    detection::{AssignedModel, BackendChoice, DEFAULT_MODEL, FromWorker, ToWorker},
    history::History,
    inspect::{Inspect, ShiftCounters},
    live::{FrameView, LiveLoop},
    pull, records,
    review::Review,
    service_worker::{self, ServiceWorkerStatus},
    setup::{self, EngineState, SaveState, Setup},
    storage::{self, StationSettings},
    sync,
    sync_status::SyncStatus,
    wake_lock,
};
use chrono::{DateTime, Utc};
use gloo_timers::future::TimeoutFuture;
use idb::Database;
use protocol::{ModelAssignment, ModelRef, Outcome};
use std::rc::Rc;
use yew::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Screen {
    Inspect,
    History,
    Setup,
    Review,
}

/// How long a camera that failed to start or stopped is left before it is tried again.
const CAMERA_RETRY_MS: u32 = 3_000;

/// The lowest score any class fails at: the detector need not report boxes below it.
fn lowest_threshold(settings: &StationSettings) -> f32 {
    settings
        .thresholds
        .iter()
        .map(|t| t.threshold)
        .fold(settings.default_threshold, f32::min)
}

/// Counts the stored records of the current shift (newest first, so it stops at the first older).
async fn shift_counters(db: &Database, since: DateTime<Utc>) -> Result<ShiftCounters, String> {
    let mut counters = ShiftCounters::default();
    for stored in records::recent_inspections(db, 100_000).await? {
        if stored.record.inspected_at < since {
            break;
        }
        counters.add(stored.record.decision.outcome(stored.record.verdict));
    }
    Ok(counters)
}

/// Loads the station's model (the assigned one, else the default) into a fresh detection worker,
/// unless it is the one already loaded. An inspection in review keeps the model that judged it.
async fn load_detector(
    live: &Rc<LiveLoop>,
    db: &Database,
    loaded: &std::cell::RefCell<Option<Option<ModelAssignment>>>,
    engine: &UseStateHandle<EngineState>,
) {
    let assignment = storage::assigned_model(db).await.ok().flatten();
    if loaded.borrow().as_ref() == Some(&assignment) {
        return;
    }
    let settings = storage::load_station(db)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let load = ToWorker::Load {
        url: assignment.as_ref().map_or_else(
            || DEFAULT_MODEL.to_string(),
            |a| a.download_url.trim_start_matches('/').to_string(),
        ),
        assigned: assignment.as_ref().map(|a| AssignedModel {
            model: ModelRef {
                id: a.name.clone(),
                version: a.version.clone(),
            },
            sha256: a.sha256.clone(),
            token: settings.token.clone(),
        }),
        remembered: storage::load_backend_choice(db).await.ok().flatten(),
        confidence: lowest_threshold(&settings),
    };
    engine.set(EngineState::Loading {
        loaded: 0,
        total: None,
    });
    match live.load(&load) {
        Ok(()) => *loaded.borrow_mut() = Some(assignment),
        Err(e) => engine.set(EngineState::Failed(e)),
    }
}

#[function_component(App)]
pub fn app() -> Html {
    let settings = use_state(StationSettings::default);
    let save_state = use_state(|| SaveState::Loading);
    let db = use_state(|| None::<Shared<Database>>);
    let live = use_state(|| None::<Shared<LiveLoop>>);
    let engine = use_state(|| EngineState::Loading {
        loaded: 0,
        total: None,
    });
    let frame = use_state(|| None::<FrameView>);
    let live_problem = use_state(|| None::<String>);
    // The camera's <video> while it runs, for the Inspect screen to show.
    let camera_video = use_state(|| None::<web_sys::HtmlVideoElement>);
    let cameras = use_state(Vec::new);
    let sw_status = use_state(|| ServiceWorkerStatus::Registering);
    let screen = use_state(|| Screen::Inspect);
    let counters = use_state(ShiftCounters::default);
    let update_ready = use_state(|| false);
    let generation = use_state(|| 0u64);
    // The camera settings the running camera was opened with.
    let opened_camera = use_mut_ref(|| None::<(Option<String>, (u32, u32))>);

    // Keeps the camera of the current settings open for the page's life: a camera that fails to
    // start (busy, not yet plugged in) or stops (unplugged) is tried again every few seconds.
    let open_camera = {
        let (live_problem, cameras, opened_camera, frame, camera_video) = (
            live_problem.clone(),
            cameras.clone(),
            opened_camera.clone(),
            frame.clone(),
            camera_video.clone(),
        );
        move |live: Shared<LiveLoop>, settings: StationSettings| {
            let wanted = (settings.camera_id.clone(), settings.resolution);
            if opened_camera.borrow().as_ref() == Some(&wanted) {
                return;
            }
            *opened_camera.borrow_mut() = Some(wanted.clone());
            let still_wanted = {
                let opened_camera = opened_camera.clone();
                move || opened_camera.borrow().as_ref() == Some(&wanted)
            };
            let (live_problem, cameras, frame, camera_video) = (
                live_problem.clone(),
                cameras.clone(),
                frame.clone(),
                camera_video.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                // A camera being replaced or gone: nothing of it is shown, analysed or inspected.
                let put_away = |video: &web_sys::HtmlVideoElement| {
                    camera::close(video);
                    live.0.lose_camera();
                    camera_video.set(None);
                    frame.set(None);
                };
                if let Some(old) = live.0.video() {
                    put_away(&old);
                }
                let texts = settings.language.texts();
                loop {
                    match camera::open(settings.camera_id.as_deref(), settings.resolution).await {
                        // Settings changed while this camera was starting: theirs runs instead.
                        Ok(video) if !still_wanted() => return camera::close(&video),
                        Ok(video) => {
                            live_problem.set(None);
                            live.0.start(video.clone());
                            camera_video.set(Some(video.clone()));
                            // Labels are only listed once the camera was allowed.
                            if let Ok(list) = camera::list().await {
                                cameras.set(list);
                            }
                            camera::ended(&video).await;
                            // Put away by the task of newer settings.
                            if !still_wanted() {
                                return;
                            }
                            put_away(&video);
                            live_problem.set(Some(texts.camera_lost.to_string()));
                        }
                        Err(e) => live_problem.set(Some(format!("{}: {e}", texts.camera_failed))),
                    }
                    TimeoutFuture::new(CAMERA_RETRY_MS).await;
                    if !still_wanted() {
                        return;
                    }
                }
            });
        }
    };

    {
        let (
            settings,
            save_state,
            db,
            live,
            engine,
            frame,
            live_problem,
            sw_status,
            counters,
            update_ready,
        ) = (
            settings.clone(),
            save_state.clone(),
            db.clone(),
            live.clone(),
            engine.clone(),
            frame.clone(),
            live_problem.clone(),
            sw_status.clone(),
            counters.clone(),
            update_ready.clone(),
        );
        let open_camera = open_camera.clone();
        use_effect_with((), move |_| {
            wake_lock::keep_screen_on();
            wasm_bindgen_futures::spawn_local(async move {
                sw_status.set(service_worker::register().await);
                service_worker::watch_for_update(move || update_ready.set(true)).await;
            });
            wasm_bindgen_futures::spawn_local(async move {
                let database = match storage::open().await {
                    Ok(database) => Rc::new(database),
                    Err(e) => {
                        save_state.set(SaveState::Failed(e));
                        return;
                    }
                };
                let stored = match storage::load_station(&database).await {
                    Ok(stored) => {
                        save_state.set(SaveState::Idle);
                        stored.unwrap_or_default()
                    }
                    Err(e) => {
                        save_state.set(SaveState::Failed(e));
                        StationSettings::default()
                    }
                };
                settings.set(stored.clone());
                db.set(Some(Shared(database.clone())));
                // The sync loop keeps a connection of its own for the page's life.
                match storage::open().await {
                    Ok(own) => sync::start(own),
                    Err(e) => web_sys::console::error_1(&format!("sync not started: {e}").into()),
                }
                if let Ok(since) = storage::shift_started_at(&database).await
                    && let Ok(counted) = shift_counters(&database, since).await
                {
                    counters.set(counted);
                }

                let on_engine = {
                    let (engine, live_problem, database) =
                        (engine.clone(), live_problem.clone(), database.clone());
                    // A handle's value is fixed when it was made: remember readiness here.
                    let ready = std::cell::Cell::new(false);
                    move |reply: FromWorker| match reply {
                        FromWorker::Progress { loaded, total } => {
                            ready.set(false);
                            engine.set(EngineState::Loading { loaded, total })
                        }
                        FromWorker::Ready(info) => {
                            if !info.measured_ms.is_empty() {
                                let choice = BackendChoice {
                                    model_version: info.model.version.clone(),
                                    backend: info.backend,
                                };
                                let database = database.clone();
                                wasm_bindgen_futures::spawn_local(async move {
                                    let _ = storage::save_backend_choice(&database, &choice).await;
                                });
                            }
                            ready.set(true);
                            engine.set(EngineState::Ready(info));
                        }
                        FromWorker::Failed { reason } => {
                            if ready.get() {
                                live_problem.set(Some(reason));
                            } else {
                                engine.set(EngineState::Failed(reason));
                            }
                        }
                        FromWorker::Started | FromWorker::Detections { .. } => {}
                    }
                };
                // An analysed frame means camera and detector work again.
                let on_frame = move |view: FrameView| {
                    live_problem.set(None);
                    frame.set(Some(view));
                };
                let spawned = Shared(LiveLoop::new(on_engine, on_frame));
                let loaded_model = Rc::new(std::cell::RefCell::new(None));
                load_detector(&spawned.0, &database, &loaded_model, &engine).await;
                // A supervisor's new thresholds or model, pulled by the sync loop.
                pull::subscribe(Callback::from({
                    let (spawned, database, engine) =
                        (spawned.clone(), database.clone(), engine.clone());
                    move |()| {
                        let (spawned, database, engine, loaded_model, settings) = (
                            spawned.clone(),
                            database.clone(),
                            engine.clone(),
                            loaded_model.clone(),
                            settings.clone(),
                        );
                        wasm_bindgen_futures::spawn_local(async move {
                            if let Ok(Some(stored)) = storage::load_station(&database).await {
                                let confidence = lowest_threshold(&stored);
                                let _ = spawned.0.send(&ToWorker::SetConfidence { confidence });
                                settings.set(stored);
                            }
                            load_detector(&spawned.0, &database, &loaded_model, &engine).await;
                        });
                    }
                }));
                live.set(Some(spawned.clone()));
                open_camera(spawned, stored);
            });
        });
    }

    let texts = settings.language.texts();

    let on_change = {
        let (settings, save_state) = (settings.clone(), save_state.clone());
        Callback::from(move |next: StationSettings| {
            settings.set(next);
            save_state.set(SaveState::Idle);
        })
    };
    let on_save = {
        let (settings, save_state, db, live) = (
            settings.clone(),
            save_state.clone(),
            db.clone(),
            live.clone(),
        );
        let open_camera = open_camera.clone();
        Callback::from(move |()| {
            let Some(db) = (*db).clone() else { return };
            let settings = (*settings).clone();
            let (save_state, live, open_camera) =
                (save_state.clone(), (*live).clone(), open_camera.clone());
            save_state.set(SaveState::Saving);
            wasm_bindgen_futures::spawn_local(async move {
                match storage::save_station(&db.0, &settings).await {
                    Ok(()) => {
                        save_state.set(SaveState::Saved);
                        if let Some(live) = live {
                            let confidence = lowest_threshold(&settings);
                            let _ = live.0.send(&ToWorker::SetConfidence { confidence });
                            open_camera(live, settings);
                        }
                    }
                    Err(e) => save_state.set(SaveState::Failed(e)),
                }
            });
        })
    };
    let on_saved = {
        let (counters, generation, update_ready) =
            (counters.clone(), generation.clone(), update_ready.clone());
        Callback::from(move |outcome: Outcome| {
            let mut next = *counters;
            next.add(outcome);
            counters.set(next);
            generation.set(*generation + 1);
            // Between two parts, the one moment a new version may take over.
            if *update_ready {
                wasm_bindgen_futures::spawn_local(service_worker::apply_update());
            }
        })
    };
    let on_new_shift = {
        let (counters, db) = (counters.clone(), db.clone());
        Callback::from(move |()| {
            let Some(db) = (*db).clone() else { return };
            let counters = counters.clone();
            wasm_bindgen_futures::spawn_local(async move {
                if storage::start_shift(&db.0, Utc::now()).await.is_ok() {
                    counters.set(ShiftCounters::default());
                }
            });
        })
    };

    let model = match &*engine {
        EngineState::Ready(info) => Some(info.model.clone()),
        _ => None,
    };
    // A camera or frame failure outranks "waiting for the first frame": it is why none came.
    let problem = match &*engine {
        EngineState::Loading { loaded, total } => {
            Some(setup::progress_text(texts, *loaded, *total))
        }
        EngineState::Failed(e) => Some(format!("{}: {e}", texts.detector_failed)),
        EngineState::Ready(_) => (*live_problem)
            .clone()
            .or_else(|| frame.is_none().then(|| texts.waiting_for_frame.to_string())),
    };
    let rate = match (&*engine, &*frame) {
        (EngineState::Ready(info), Some(f)) => format!(
            "{} · {:.1}{} · {:.0} ms",
            match info.backend {
                crate::detection::BackendKind::Gpu => texts.on_gpu.to_string(),
                crate::detection::BackendKind::Cpu => setup::cpu_label(info),
            },
            f.stats.rate_hz,
            texts.per_second,
            f.stats.latency_ms
        ),
        _ => String::new(),
    };
    let tab = |which: Screen, id: &'static str, label: &'static str| {
        let screen = screen.clone();
        html! {
            <button {id} class={if *screen == which { "tab active" } else { "tab" }}
                onclick={Callback::from(move |_| screen.set(which))}>{ label }</button>
        }
    };

    html! {
        <div id="app-shell" lang={settings.language.code()}>
            <header>
                <h1>{ "LineCheck" }</h1>
                // The tabs right after the fixed title: what follows changes width as it runs
                // (the rate line about 12 times a second), and tabs placed after it moved under
                // the operator's finger.
                <nav>
                    { tab(Screen::Inspect, "nav-inspect", texts.nav_inspect) }
                    { tab(Screen::History, "nav-history", texts.nav_history) }
                    { tab(Screen::Setup, "nav-setup", texts.nav_setup) }
                    { tab(Screen::Review, "nav-review", texts.review.nav) }
                </nav>
                <span id="station-title">{
                    if settings.station.is_empty() { texts.station_not_set_up.to_string() }
                    else { format!("{} · {} · {}", settings.station, settings.line, settings.operator) }
                }</span>
                <span id="detector-rate" class="muted"
                    data-frames={frame.as_ref().map(|f| f.stats.frames.to_string())}
                    data-latency-ms={frame.as_ref().map(|f| format!("{:.1}", f.stats.latency_ms))}
                    data-infer-ms={frame.as_ref().map(|f| format!("{:.1}", f.stats.infer_ms))}>{ rate }</span>
                <SyncStatus texts={texts} />
            </header>
            if *update_ready {
                <p class="banner" id="update-ready">{ texts.update_ready }</p>
            }
            {
                match *screen {
                    Screen::Inspect => match &*live {
                        Some(live) => html! {
                            <main class="inspect-screen">
                                <Inspect texts={texts} settings={(*settings).clone()} db={(*db).clone()}
                                    live={live.clone()} camera={(*camera_video).clone()} {model} frame={(*frame).clone()} {problem}
                                    counters={*counters} {on_saved} {on_new_shift} />
                            </main>
                        },
                        None => html! { <main><p class="pending">{ problem.unwrap_or_else(|| texts.loading.to_string()) }</p></main> },
                    },
                    Screen::History => html! {
                        <History texts={texts} db={(*db).clone()} generation={*generation} />
                    },
                    Screen::Setup => html! {
                        <Setup texts={texts} settings={(*settings).clone()} save_state={(*save_state).clone()}
                            cameras={(*cameras).clone()} engine={(*engine).clone()} sw_status={(*sw_status).clone()}
                            {on_change} {on_save} />
                    },
                    Screen::Review => html! { <Review texts={texts} /> },
                }
            }
        </div>
    }
}
