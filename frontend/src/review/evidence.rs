//! One inspection opened from the history: its snapshot with the boxes as the supervisors'
//! corrections left them, the operator's decision and the model that made the call, the
//! corrections made so far (who, when, what), and the tools to make more: per detection
//! (`corrections.rs`) and a missed defect drawn as a box (`missed_defect.rs`).

use super::{
    api::call,
    corrections::Corrections,
    missed_defect::{DrawLayer, MissedDefectForm},
    texts::ReviewTexts,
};
use crate::overlay;
use protocol::{
    BoundingBox, Correction, CorrectionAction, InspectionRecord, ModelSummary, OperatorDecision,
    apply_corrections,
};
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct EvidenceProps {
    pub texts: &'static ReviewTexts,
    pub record: InspectionRecord,
    /// Every class seen in the loaded history, by id: the classes offered when the model that
    /// made the call is not one uploaded to the server (the build's own).
    pub seen_classes: Vec<(u32, String)>,
}

/// Marking a missed defect: the box drawn so far, and whether the last drag was too small.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Marking {
    drawn: Option<BoundingBox>,
    too_small: bool,
}

#[function_component(Evidence)]
pub fn evidence(props: &EvidenceProps) -> Html {
    let t = props.texts;
    let record = &props.record;
    let corrections = use_state(|| None::<Result<Vec<Correction>, String>>);
    // The class names of the model that made the call, when the server has it.
    let model_classes = use_state(|| None::<Vec<(u32, String)>>);
    let marking = use_state(|| None::<Marking>);
    {
        let (corrections, model_classes) = (corrections.clone(), model_classes.clone());
        let (id, model) = (record.id, record.model.clone());
        use_effect_with(id, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                let url = format!("api/v1/inspections/{id}/corrections");
                let made = call::<Vec<Correction>>("GET", &url, None::<&()>).await;
                corrections.set(Some(made.map_err(|e| e.to_string())));
                if let Ok(models) =
                    call::<Vec<ModelSummary>>("GET", "api/v1/models", None::<&()>).await
                {
                    model_classes.set(
                        models
                            .into_iter()
                            .find(|m| m.name == model.id && m.version == model.version)
                            .map(|m| (0..).zip(m.classes).collect()),
                    );
                }
            });
        });
    }
    let on_made = {
        let corrections = corrections.clone();
        Callback::from(move |made: Correction| {
            let mut list = match &*corrections {
                Some(Ok(list)) => list.clone(),
                _ => vec![],
            };
            list.push(made);
            corrections.set(Some(Ok(list)));
        })
    };
    let classes = model_classes
        .as_ref()
        .cloned()
        .unwrap_or_else(|| props.seen_classes.clone());
    let made: &[Correction] = match &*corrections {
        Some(Ok(list)) => list,
        _ => &[],
    };
    let corrected = apply_corrections(record.detections.len(), made.iter().map(|c| &c.action));

    let on_mark = {
        let marking = marking.clone();
        Callback::from(move |_: MouseEvent| marking.set(Some(Marking::default())))
    };
    let on_drawn = {
        let marking = marking.clone();
        Callback::from(move |drawn: Option<BoundingBox>| {
            marking.set(Some(Marking {
                drawn,
                too_small: drawn.is_none(),
            }))
        })
    };
    let layer = marking.map(|m| {
        let on_drawn = on_drawn.clone();
        Callback::from(move |(width, height): (u32, u32)| {
            html! { <DrawLayer {width} {height} drawn={m.drawn} on_drawn={on_drawn.clone()} /> }
        })
    });
    let on_saved = {
        let (marking, on_made) = (marking.clone(), on_made.clone());
        Callback::from(move |made: Correction| {
            marking.set(None);
            on_made.emit(made);
        })
    };
    let on_cancel = {
        let marking = marking.clone();
        Callback::from(move |()| marking.set(None))
    };

    html! {
        <div class="evidence">
            if let Some(snapshot) = &record.snapshot {
                <overlay::SnapshotView url={format!("api/v1/snapshots/{}", snapshot.sha256)}
                    detections={record.detections.clone()} thresholds={overlay::thresholds_of(record)}
                    corrected={corrected} {layer} />
                if let Some(m) = *marking {
                    <MissedDefectForm texts={t} inspection={record.id} drawn={m.drawn}
                        too_small={m.too_small} classes={classes.clone()} {on_saved} {on_cancel} />
                } else {
                    <button id="missed-mark" onclick={on_mark}>{ t.mark_missed }</button>
                }
            } else {
                <p class="muted">{ t.no_snapshot }</p>
            }
            <p class="review-decision">{ format!("{}: {}", t.decision, decision_text(t, &record.decision)) }</p>
            <p class="review-model">{ format!("{}: {} {}", t.model, record.model.id, record.model.version) }</p>
            <Corrections texts={t} record={record.clone()} {classes} {on_made} />
            <h4>{ t.corrections }</h4>
            {
                match &*corrections {
                    None => html! {},
                    Some(Err(e)) => html! { <p class="error">{ e }</p> },
                    Some(Ok(list)) if list.is_empty() => html! { <p class="muted" id="no-corrections">{ t.no_corrections }</p> },
                    Some(Ok(list)) => html! {
                        <ul class="corrections" data-count={list.len().to_string()}>
                            { for list.iter().map(|c| html! {
                                <li class="correction" data-kind={kind_of(&c.action)}>
                                    { format!("{} {}: {}", c.corrected_at.format("%Y-%m-%d %H:%M"), c.supervisor,
                                        t.correction(&c.action, &record.detections)) }
                                </li>
                            }) }
                        </ul>
                    },
                }
            }
        </div>
    }
}

/// The action's `kind` as the protocol names it.
fn kind_of(action: &CorrectionAction) -> &'static str {
    match action {
        CorrectionAction::Confirm { .. } => "confirm",
        CorrectionAction::Relabel { .. } => "relabel",
        CorrectionAction::Delete { .. } => "delete",
        CorrectionAction::MissedDefect { .. } => "missed_defect",
    }
}

fn decision_text(t: &ReviewTexts, decision: &OperatorDecision) -> String {
    match decision {
        OperatorDecision::Confirmed => t.confirmed.to_string(),
        OperatorDecision::OverriddenOk { reason } => format!("{} ({reason})", t.overridden_ok),
        OperatorDecision::OverriddenNok { reason } => format!("{} ({reason})", t.overridden_nok),
        OperatorDecision::Unsure => t.unsure.to_string(),
    }
}
