//! The review API as the supervisor's browser calls it: same-origin requests that carry the
//! session cookie, and the filters as the query string every review endpoint takes.

use chrono::{Days, NaiveDate};
use serde::{Serialize, de::DeserializeOwned};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The history filters as the supervisor typed them; empty means "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// `YYYY-MM-DD` from a date input, UTC.
    pub from: String,
    /// `YYYY-MM-DD`, inclusive.
    pub to: String,
    pub line: String,
    pub station: String,
    pub operator: String,
    /// `pass`, `fail` or empty.
    pub verdict: String,
    pub class: String,
    pub lot: String,
    pub serial: String,
}

impl Filters {
    /// The query string (without `?`) of the filters that are set. A date that does not parse is
    /// left out here and named by `problem`.
    pub fn query(&self) -> String {
        let mut query = url_query();
        if let Ok(Some(from)) = day_start(&self.from, 0) {
            query.append_pair("from", &from);
        }
        if let Ok(Some(to)) = day_start(&self.to, 1) {
            query.append_pair("to", &to);
        }
        for (name, value) in [
            ("line", &self.line),
            ("station", &self.station),
            ("operator", &self.operator),
            ("verdict", &self.verdict),
            ("class", &self.class),
            ("lot", &self.lot),
            ("serial", &self.serial),
        ] {
            let value = value.trim();
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        query.finish()
    }

    /// Why a date filter cannot be used, if one cannot.
    pub fn problem(&self) -> Option<String> {
        day_start(&self.from, 0).and(day_start(&self.to, 1)).err()
    }
}

fn url_query() -> form_urlencoded::Serializer<'static, String> {
    form_urlencoded::Serializer::new(String::new())
}

/// Midnight UTC `days_later` days after the date `text`, as RFC 3339; `None` when it is empty.
pub fn day_start(text: &str, days_later: u64) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("{text:?} is not a date (YYYY-MM-DD): {e}"))?;
    let day = date
        .checked_add_days(Days::new(days_later))
        .ok_or_else(|| format!("{text:?} is out of range"))?;
    Ok(Some(format!("{day}T00:00:00Z")))
}

/// An answer other than success: its status (0 when the server was not reached) and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            0 => write!(f, "cannot reach the server: {}", self.reason),
            status => write!(f, "the server answered {status}: {}", self.reason),
        }
    }
}

/// Sends one request (a body of its content type, if given); the answer's status and text.
async fn send(
    method: &str,
    url: &str,
    body: Option<(&str, JsValue)>,
) -> Result<(u16, String), Failure> {
    let unreachable = |e: JsValue| Failure {
        status: 0,
        reason: e
            .as_string()
            .or_else(|| js_sys::Error::from(e).message().as_string())
            .unwrap_or_default(),
    };
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_cache(web_sys::RequestCache::NoStore);
    if let Some((content_type, body)) = body {
        let headers = web_sys::Headers::new().map_err(unreachable)?;
        headers
            .set("Content-Type", content_type)
            .map_err(unreachable)?;
        init.set_headers(&headers);
        init.set_body(&body);
    }
    let window = web_sys::window().ok_or_else(|| unreachable("no window".into()))?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(unreachable)?
        .unchecked_into();
    let text = JsFuture::from(response.text().map_err(unreachable)?)
        .await
        .map_err(unreachable)?
        .as_string()
        .unwrap_or_default();
    Ok((response.status(), text))
}

/// Sends a request with a JSON body, if given, and reads a JSON answer of type `T`.
pub async fn call<T: DeserializeOwned>(
    method: &str,
    url: &str,
    body: Option<&impl Serialize>,
) -> Result<T, Failure> {
    let json = body
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| Failure {
            status: 0,
            reason: e.to_string(),
        })?;
    call_with(
        method,
        url,
        json.map(|json| ("application/json", JsValue::from(json))),
    )
    .await
}

/// Sends a request with a body of its content type, if given, and reads a JSON answer of type
/// `T`; an error status is a `Failure` with the server's `{"error": reason}`.
pub async fn call_with<T: DeserializeOwned>(
    method: &str,
    url: &str,
    body: Option<(&str, JsValue)>,
) -> Result<T, Failure> {
    let (status, text) = send(method, url, body).await?;
    if !(200..300).contains(&status) {
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_string))
            .unwrap_or_else(|| text.chars().take(200).collect());
        return Err(Failure { status, reason });
    }
    // An empty answer (204) reads as JSON `null`.
    serde_json::from_str(if text.is_empty() { "null" } else { &text }).map_err(|e| Failure {
        status,
        reason: format!("unexpected answer: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::Filters;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn filters_make_the_query_of_those_set_with_an_inclusive_end_date() {
        let filters = Filters {
            from: "2026-11-23".into(),
            to: "2026-11-24".into(),
            station: " ST-01 ".into(),
            operator: "ben, \"jr\"".into(),
            verdict: "fail".into(),
            ..Filters::default()
        };
        assert_eq!(
            filters.query(),
            "from=2026-11-23T00%3A00%3A00Z&to=2026-11-25T00%3A00%3A00Z&station=ST-01\
             &operator=ben%2C+%22jr%22&verdict=fail"
        );
        assert_eq!(Filters::default().query(), "");
        let bad = Filters {
            to: "24.11.2026".into(),
            ..Filters::default()
        };
        assert!(bad.problem().unwrap().contains("24.11.2026"), "{bad:?}");
    }
}
