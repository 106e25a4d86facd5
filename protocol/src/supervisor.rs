//! What a supervisor's browser and the server exchange: login sessions and station enrollment.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/session`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

/// Who a session belongs to and until when (`POST` and `GET /api/v1/session`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub supervisor: String,
    pub expires_at: DateTime<Utc>,
}

/// `POST /api/v1/stations`: enroll a station's kiosk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollStationRequest {
    pub station: String,
}

/// The token the kiosk stores; the server keeps only its hash, so it is shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledStation {
    pub station: String,
    pub token: String,
}

/// One enrolled station in `GET /api/v1/stations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationSummary {
    pub station: String,
    /// When its first token was issued.
    pub enrolled_at: DateTime<Utc>,
    /// How many tokens were issued for it (a replaced tablet gets a new one).
    pub tokens: u32,
    /// When one of its kiosks last had a record applied; `None` before its first.
    pub last_push_at: Option<DateTime<Utc>>,
}

/// One uploaded model in `GET /api/v1/models` (and the answer to its upload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// `name@version`, what an assignment names.
    pub id: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub byte_len: u64,
    /// The class names the model declares, by class id.
    pub classes: Vec<String>,
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
}
