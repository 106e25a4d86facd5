//! Model rollout from the review screen: upload an ONNX model (the server runs it once and
//! refuses it with the engine's reason if it cannot), and assign a model and thresholds to a
//! station, which its kiosk pulls on its next sync.

use super::{
    api::{Failure, call, call_with},
    texts::ReviewTexts,
};
use protocol::{AssignmentRequest, ClassThreshold, ModelSummary, StationSummary};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct ModelsProps {
    pub texts: &'static ReviewTexts,
}

fn input_value(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>()
        .map(|i| i.value())
        .unwrap_or_default()
}

/// A threshold typed in percent, as the kiosk's setup shows them.
fn percent(text: &str) -> Result<f32, String> {
    let value: f32 = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a percentage: {e}"))?;
    if (0.0..=100.0).contains(&value) {
        Ok(value / 100.0)
    } else {
        Err(format!("{value} is not between 0 and 100"))
    }
}

async fn upload(
    name: String,
    version: String,
    file: web_sys::File,
) -> Result<ModelSummary, String> {
    let bytes = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("cannot read {}: {e:?}", file.name()))?;
    let mut url = String::from("api/v1/models?");
    url.push_str(
        &form_urlencoded::Serializer::new(String::new())
            .append_pair("name", &name)
            .append_pair("version", &version)
            .finish(),
    );
    call_with("POST", &url, Some(("application/octet-stream", bytes)))
        .await
        .map_err(|e: Failure| e.to_string())
}

#[function_component(Models)]
pub fn models(props: &ModelsProps) -> Html {
    let t = props.texts;
    let models = use_state(Vec::<ModelSummary>::new);
    let stations = use_state(Vec::<StationSummary>::new);
    let picked_model = use_state(String::new);
    // Controlled, so a refreshed station list does not change the pick.
    let picked_station = use_state(String::new);
    let message = use_state(|| None::<Result<String, String>>);
    let (file, name, version) = (use_node_ref(), use_node_ref(), use_node_ref());
    let default_threshold = use_node_ref();
    let refresh = {
        let (models, stations, message) = (models.clone(), stations.clone(), message.clone());
        move || {
            let (models, stations, message) = (models.clone(), stations.clone(), message.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match (
                    call::<Vec<ModelSummary>>("GET", "api/v1/models", None::<&()>).await,
                    call::<Vec<StationSummary>>("GET", "api/v1/stations", None::<&()>).await,
                ) {
                    (Ok(m), Ok(s)) => {
                        models.set(m);
                        stations.set(s);
                    }
                    (Err(e), _) | (_, Err(e)) => message.set(Some(Err(e.to_string()))),
                }
            });
        }
    };
    {
        let refresh = refresh.clone();
        use_effect_with((), move |_| refresh());
    }
    let on_upload = {
        let (file, name, version, message, refresh) = (
            file.clone(),
            name.clone(),
            version.clone(),
            message.clone(),
            refresh.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let chosen = file
                .cast::<HtmlInputElement>()
                .and_then(|i| i.files())
                .and_then(|f| f.get(0));
            let Some(chosen) = chosen else {
                message.set(Some(Err(t.choose_file.to_string())));
                return;
            };
            let (name, version) = (input_value(&name), input_value(&version));
            let (message, refresh) = (message.clone(), refresh.clone());
            message.set(Some(Ok(t.uploading.to_string())));
            wasm_bindgen_futures::spawn_local(async move {
                message.set(Some(
                    upload(name, version, chosen)
                        .await
                        .map(|m| format!("{} {}", t.uploaded, m.id)),
                ));
                refresh();
            });
        })
    };
    let on_pick_station = {
        let picked_station = picked_station.clone();
        Callback::from(move |e: Event| {
            picked_station.set(e.target_unchecked_into::<HtmlSelectElement>().value())
        })
    };
    // Until one is picked, the first listed station is the one the select shows.
    let station_name = if picked_station.is_empty() {
        stations
            .first()
            .map(|s| s.station.clone())
            .unwrap_or_default()
    } else {
        (*picked_station).clone()
    };
    let on_pick_model = {
        let picked_model = picked_model.clone();
        Callback::from(move |e: Event| {
            picked_model.set(e.target_unchecked_into::<HtmlSelectElement>().value())
        })
    };
    let classes: Vec<String> = models
        .iter()
        .find(|m| m.id == *picked_model)
        .map(|m| m.classes.clone())
        .unwrap_or_default();
    let on_assign = {
        let (station_name, default_threshold, picked_model, message, classes) = (
            station_name.clone(),
            default_threshold.clone(),
            picked_model.clone(),
            message.clone(),
            classes.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let station_name = station_name.clone();
            let document = web_sys::window().and_then(|w| w.document());
            let request = (|| {
                let mut thresholds = vec![];
                for (class_id, label) in classes.iter().enumerate() {
                    let typed = document
                        .as_ref()
                        .and_then(|d| d.get_element_by_id(&format!("assign-threshold-{label}")))
                        .and_then(|el| el.dyn_into::<HtmlInputElement>().ok())
                        .map(|i| i.value())
                        .unwrap_or_default();
                    if !typed.trim().is_empty() {
                        thresholds.push(ClassThreshold {
                            class_id: class_id as u32,
                            threshold: percent(&typed).map_err(|e| format!("{label}: {e}"))?,
                        });
                    }
                }
                Ok::<_, String>(AssignmentRequest {
                    model_id: (!picked_model.is_empty()).then(|| (*picked_model).clone()),
                    default_threshold: percent(&input_value(&default_threshold))?,
                    thresholds,
                })
            })();
            let message = message.clone();
            let request = match request {
                Ok(request) => request,
                Err(e) => return message.set(Some(Err(e))),
            };
            wasm_bindgen_futures::spawn_local(async move {
                let url = format!(
                    "api/v1/stations/{}/assignment",
                    form_urlencoded::byte_serialize(station_name.as_bytes()).collect::<String>()
                );
                message.set(Some(
                    call::<serde_json::Value>("PUT", &url, Some(&request))
                        .await
                        .map(|_| format!("{} {station_name}", t.assigned))
                        .map_err(|e| e.to_string()),
                ));
            });
        })
    };

    html! {
        <section class="review-models">
            <h2>{ t.models }</h2>
            <form class="model-upload" onsubmit={on_upload}>
                <label for="model-file">{ t.onnx_file }</label>
                <input id="model-file" type="file" accept=".onnx" ref={file} />
                <label for="model-name">{ t.model_name }</label>
                <input id="model-name" ref={name} />
                <label for="model-version">{ t.model_version }</label>
                <input id="model-version" ref={version} />
                <button id="model-upload" type="submit">{ t.upload }</button>
            </form>
            <ul id="model-list">
                { for models.iter().map(|m| html! {
                    <li data-id={m.id.clone()}>{ format!("{} · {} · {}", m.id, m.classes.join(", "), m.uploaded_by) }</li>
                }) }
            </ul>
            <form class="model-assign" onsubmit={on_assign}>
                <label for="assign-station">{ t.station }</label>
                <select id="assign-station" onchange={on_pick_station}>
                    { for stations.iter().map(|s| html! {
                        <option value={s.station.clone()} selected={s.station == station_name}>{ &s.station }</option>
                    }) }
                </select>
                <label for="assign-model">{ t.model }</label>
                <select id="assign-model" onchange={on_pick_model}>
                    <option value="" selected={picked_model.is_empty()}>{ t.built_in_model }</option>
                    { for models.iter().map(|m| html! {
                        <option value={m.id.clone()} selected={*picked_model == m.id}>{ &m.id }</option>
                    }) }
                </select>
                <label for="assign-default">{ t.default_threshold }</label>
                <input id="assign-default" type="number" min="0" max="100" value="50" ref={default_threshold} />
                { for classes.iter().map(|label| html! {
                    <>
                        <label for={format!("assign-threshold-{label}")}>{ format!("{} {label}", t.class_threshold) }</label>
                        <input id={format!("assign-threshold-{label}")} type="number" min="0" max="100" />
                    </>
                }) }
                <button id="assign-model-button" type="submit">{ t.assign }</button>
            </form>
            {
                match &*message {
                    None => html! {},
                    Some(Ok(text)) => html! { <p id="models-message">{ text }</p> },
                    Some(Err(e)) => html! { <p id="models-message" class="error">{ e }</p> },
                }
            }
        </section>
    }
}
