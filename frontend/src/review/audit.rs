//! The audit trail (`GET /api/v1/audit`): every supervisor change, newest first, under filters of
//! kind, station, supervisor and date, paged by the server's cursor.

use super::{
    api::{call, day_start},
    texts::ReviewTexts,
};
use protocol::{AuditChange, AuditEntry, AuditPage};
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Entries per page.
const PAGE_ENTRIES: u32 = 50;

#[derive(Debug, Clone, Default, PartialEq)]
struct AuditFilters {
    /// One of `AuditChange::KINDS`, or empty.
    kind: String,
    station: String,
    supervisor: String,
    /// `YYYY-MM-DD`, UTC.
    from: String,
    /// `YYYY-MM-DD`, UTC, inclusive.
    to: String,
}

impl AuditFilters {
    /// The query string of the filters that are set; a date that does not parse is left out.
    fn query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(format!("limit={PAGE_ENTRIES}"));
        for (name, value) in [
            ("kind", &self.kind),
            ("station", &self.station),
            ("supervisor", &self.supervisor),
        ] {
            if !value.trim().is_empty() {
                query.append_pair(name, value.trim());
            }
        }
        if let Ok(Some(from)) = day_start(&self.from, 0) {
            query.append_pair("from", &from);
        }
        if let Ok(Some(to)) = day_start(&self.to, 1) {
            query.append_pair("to", &to);
        }
        query.finish()
    }
}

/// The entries read so far for one query, and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    query: String,
    entries: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

async fn fetch(query: &str, cursor: Option<&str>) -> Result<AuditPage, String> {
    let mut url = format!("api/v1/audit?{query}");
    if let Some(cursor) = cursor {
        url.push_str("&cursor=");
        url.extend(form_urlencoded::byte_serialize(cursor.as_bytes()));
    }
    call::<AuditPage>("GET", &url, None::<&()>)
        .await
        .map_err(|e| e.to_string())
}

#[derive(Properties, PartialEq)]
pub struct AuditProps {
    pub texts: &'static ReviewTexts,
}

#[function_component(Audit)]
pub fn audit(props: &AuditProps) -> Html {
    let t = props.texts;
    let filters = use_state(AuditFilters::default);
    let shown = use_state(|| None::<Result<Shown, String>>);
    // Bumped by Refresh: reads the first page again under the same filters.
    let generation = use_state(|| 0u32);
    {
        let shown = shown.clone();
        use_effect_with(((*filters).clone(), *generation), move |(filters, _)| {
            let query = filters.query();
            wasm_bindgen_futures::spawn_local(async move {
                let page = fetch(&query, None).await;
                shown.set(Some(page.map(|p| Shown {
                    query,
                    entries: p.entries,
                    next_cursor: p.next_cursor,
                })));
            });
        });
    }
    let on_more = {
        let shown = shown.clone();
        Callback::from(move |_: MouseEvent| {
            let Some(Ok(so_far)) = (*shown).clone() else {
                return;
            };
            let Some(cursor) = so_far.next_cursor.clone() else {
                return;
            };
            let shown = shown.clone();
            wasm_bindgen_futures::spawn_local(async move {
                shown.set(Some(fetch(&so_far.query, Some(&cursor)).await.map(
                    |page| {
                        let mut entries = so_far.entries;
                        entries.extend(page.entries);
                        Shown {
                            query: so_far.query,
                            entries,
                            next_cursor: page.next_cursor,
                        }
                    },
                )));
            });
        })
    };
    let on_refresh = {
        let generation = generation.clone();
        Callback::from(move |_: MouseEvent| generation.set(*generation + 1))
    };
    let field = |id: &'static str,
                 label: &'static str,
                 kind: &'static str,
                 pick: fn(&mut AuditFilters) -> &mut String| {
        let value = pick(&mut (*filters).clone()).clone();
        let filters = filters.clone();
        let onchange = Callback::from(move |e: Event| {
            let mut next = (*filters).clone();
            *pick(&mut next) = e.target_unchecked_into::<HtmlInputElement>().value();
            filters.set(next);
        });
        html! {
            <label class="filter">
                <span>{ label }</span>
                <input {id} type={kind} {value} {onchange} />
            </label>
        }
    };
    let on_kind = {
        let filters = filters.clone();
        Callback::from(move |e: Event| {
            let mut next = (*filters).clone();
            next.kind = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            filters.set(next);
        })
    };
    let kinds = AuditChange::KINDS.map(|kind| (kind, kind_text(t, kind)));

    html! {
        <section class="audit" id="audit">
            <h2>{ t.audit }</h2>
            <div class="filters review-filters">
                <label class="filter">
                    <span>{ t.audit_kind }</span>
                    <select id="audit-kind" onchange={on_kind}>
                        <option value="" selected={filters.kind.is_empty()}>{ t.all_kinds }</option>
                        { for kinds.iter().map(|(kind, text)| html! {
                            <option value={*kind} selected={filters.kind == *kind}>{ *text }</option>
                        }) }
                    </select>
                </label>
                { field("audit-station", t.station, "text", |f| &mut f.station) }
                { field("audit-supervisor", t.supervisor, "text", |f| &mut f.supervisor) }
                { field("audit-from", t.from, "date", |f| &mut f.from) }
                { field("audit-to", t.to, "date", |f| &mut f.to) }
                <button id="audit-refresh" onclick={on_refresh}>{ t.refresh }</button>
            </div>
            {
                match &*shown {
                    None => html! {},
                    Some(Err(e)) => html! { <p class="error" id="audit-error">{ e }</p> },
                    Some(Ok(shown)) if shown.entries.is_empty() => html! {
                        <p class="muted" id="audit-empty">{ t.no_audit }</p>
                    },
                    Some(Ok(shown)) => html! {
                        <>
                            <table id="audit-table" data-count={shown.entries.len().to_string()}
                                data-query={shown.query.clone()}>
                                <thead><tr>
                                    <th>{ t.time_utc }</th><th>{ t.supervisor }</th><th>{ t.audit_kind }</th>
                                    <th>{ t.station }</th><th>{ t.subject }</th><th>{ t.what }</th>
                                </tr></thead>
                                <tbody>
                                    { for shown.entries.iter().map(|e| html! {
                                        <tr class="audit-row" data-seq={e.change_seq.to_string()} data-kind={e.change.kind()}>
                                            <td>{ e.at.format("%Y-%m-%d %H:%M:%S").to_string() }</td>
                                            <td class="audit-supervisor">{ &e.supervisor }</td>
                                            <td>{ kind_text(t, e.change.kind()) }</td>
                                            <td>{ e.station.clone().unwrap_or_else(|| "–".into()) }</td>
                                            <td class="audit-subject">{ &e.subject }</td>
                                            <td class="audit-what">{ change_text(t, &e.change) }</td>
                                        </tr>
                                    }) }
                                </tbody>
                            </table>
                            if shown.next_cursor.is_some() {
                                <button id="audit-more" onclick={on_more}>{ t.more }</button>
                            }
                        </>
                    },
                }
            }
        </section>
    }
}

fn kind_text(t: &ReviewTexts, kind: &str) -> &'static str {
    match kind {
        "correct_inspection" => t.kind_correction,
        "upload_model" => t.kind_upload,
        _ => t.kind_assignment,
    }
}

/// What a change did, in words.
fn change_text(t: &ReviewTexts, change: &AuditChange) -> String {
    match change {
        AuditChange::CorrectInspection(action) => t.correction(action, &[]),
        AuditChange::UploadModel(model) => format!(
            "{} {}: {} {}",
            model.name,
            model.version,
            model.classes.len(),
            t.classes
        ),
        AuditChange::AssignStation(request) => format!(
            "{}: {}; {} {:.0}",
            t.model,
            request.model_id.as_deref().unwrap_or(t.built_in_model),
            t.default_threshold,
            request.default_threshold * 100.0
        ),
    }
}
