//! Detector models: a supervisor uploads an ONNX file (`POST /api/v1/models`), the server loads
//! it with the native vision-engine and runs it on the CPU backend on a test image, and only a
//! model that passes is stored (content-addressed, like snapshots) and can be assigned to
//! stations. Kiosks download it from `GET /api/v1/models/{id}/file`.

use crate::{
    ApiError, AppState, auth::Station, changes::Change, hex, parse_utc_text, run_to_end,
    supervisors::Supervisor,
};
use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State, rejection::BytesRejection, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use protocol::{AuditChange, ModelSummary};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vision_engine::{CpuBackend, Detector, graph::OpByOp, postprocess::NmsOptions};

/// The largest model a server accepts: room for YOLO's medium sizes in fp32.
pub const MAX_MODEL_BYTES: usize = 256 * 1024 * 1024;

#[derive(Deserialize, Serialize)]
pub(crate) struct UploadQuery {
    name: String,
    version: String,
}

/// Names and versions go into ids, paths and file names: letters, digits, `.`, `_`, `-`.
fn check_part(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{field}: {value:?} must be 1 to 64 letters, digits, '.', '_' or '-'"),
        ))
    }
}

/// A deterministic test image of the model's input size: gradients in each channel, so every
/// input value differs and a model that only works on blank frames is caught too.
fn test_image(width: u32, height: u32) -> Vec<u8> {
    let mut rgba = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            rgba.extend_from_slice(&[
                (x * 255 / width.max(1)) as u8,
                (y * 255 / height.max(1)) as u8,
                ((x + y) * 7 % 256) as u8,
                255,
            ]);
        }
    }
    rgba
}

/// Loads `bytes` as a detector and runs it once on the CPU backend: its class names, or why it
/// cannot serve a kiosk (the engine's reason names the op or field at fault).
fn validate_model(bytes: &[u8]) -> Result<Vec<String>, String> {
    let detector =
        Detector::from_onnx_bytes(bytes).map_err(|e| format!("the model cannot be loaded: {e}"))?;
    let (width, height) = detector.input_size();
    let image = test_image(width, height);
    let executor = OpByOp {
        network: detector.network(),
        backend: &CpuBackend,
    };
    let (_, raw_output) = pollster::block_on(detector.detect_with_raw_output(
        &executor,
        &image,
        width,
        height,
        NmsOptions::default(),
    ))
    .map_err(|e| format!("the model fails on a {width}x{height} test image: {e}"))?;
    if let Some(bad) = raw_output.data().iter().find(|v| !v.is_finite()) {
        return Err(format!(
            "the model's output on a {width}x{height} test image holds {bad}: its weights are broken"
        ));
    }
    Ok(detector.labels().to_vec())
}

/// `POST /api/v1/models?name=&version=`: the raw ONNX bytes.
pub(crate) async fn upload(
    State(state): State<AppState>,
    supervisor: Supervisor,
    query: Result<Query<UploadQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModelSummary>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    check_part("name", &query.name)?;
    check_part("version", &query.version)?;
    let bytes = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let id = format!("{}@{}", query.name, query.version);
    let taken: Option<String> = sqlx::query_scalar("SELECT id FROM models WHERE id = $1")
        .bind(&id)
        .fetch_optional(&state.db.pool)
        .await
        .map_err(ApiError::database)?;
    if taken.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("model {id} exists already: upload it as a new version"),
        ));
    }
    // One model at a time: running one takes a CPU core for a while.
    let _running = state
        .model_validation
        .acquire()
        .await
        .map_err(|e| ApiError::internal(format!("model validation closed: {e}")))?;
    let (sha256, classes) = tokio::task::spawn_blocking({
        let bytes = bytes.clone();
        move || (hex(&Sha256::digest(&bytes)), validate_model(&bytes))
    })
    .await
    .map_err(|e| ApiError::internal(format!("model validation failed: {e}")))?;
    let classes =
        classes.map_err(|reason| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason))?;
    let byte_len = bytes.len() as u64;
    // Stored before its row commits, so a listed model always has its bytes.
    state
        .models
        .put(&sha256, bytes)
        .await
        .map_err(|e| ApiError::internal(format!("cannot store the model: {e}")))?;
    run_to_end(async move {
        let mut change = Change::begin(&state.db).await?;
        let classes_json = serde_json::to_string(&classes)
            .map_err(|e| ApiError::internal(format!("cannot encode class names: {e}")))?;
        let inserted = sqlx::query(
            "INSERT INTO models (id, name, version, sha256, byte_len, classes_json, uploaded_by,
               uploaded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(&query.name)
        .bind(&query.version)
        .bind(&sha256)
        .bind(byte_len as i64)
        .bind(classes_json)
        .bind(&supervisor.name)
        .bind(&change.at)
        .execute(&mut *change.tx)
        .await
        .map_err(ApiError::database)?;
        if inserted.rows_affected() == 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("model {id} exists already: upload it as a new version"),
            ));
        }
        let summary = ModelSummary {
            id: id.clone(),
            name: query.name.clone(),
            version: query.version.clone(),
            sha256,
            byte_len,
            classes,
            uploaded_by: supervisor.name.clone(),
            uploaded_at: parse_utc_text(&change.at)?,
        };
        change
            .commit(
                &supervisor.name,
                &id,
                None,
                &AuditChange::UploadModel(summary.clone()),
            )
            .await?;
        Ok((StatusCode::CREATED, Json(summary)))
    })
    .await
}

type ModelRow = (String, String, String, String, i64, String, String, String);

/// `GET /api/v1/models`: every uploaded model, newest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    _supervisor: Supervisor,
) -> Result<Json<Vec<ModelSummary>>, ApiError> {
    let rows: Vec<ModelRow> = sqlx::query_as(
        "SELECT id, name, version, sha256, byte_len, classes_json, uploaded_by, uploaded_at
         FROM models ORDER BY uploaded_at DESC, id",
    )
    .fetch_all(&state.db.pool)
    .await
    .map_err(ApiError::database)?;
    let models = rows
        .into_iter()
        .map(
            |(id, name, version, sha256, byte_len, classes, uploaded_by, uploaded_at)| {
                Ok(ModelSummary {
                    classes: serde_json::from_str(&classes)
                        .map_err(|e| ApiError::internal(format!("model {id}'s classes: {e}")))?,
                    id,
                    name,
                    version,
                    sha256,
                    byte_len: u64::try_from(byte_len).unwrap_or(0),
                    uploaded_by,
                    uploaded_at: parse_utc_text(&uploaded_at)?,
                })
            },
        )
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(models))
}

/// `GET /api/v1/models/{id}/file`: the ONNX bytes for a kiosk, with the SHA-256 as ETag.
pub(crate) async fn download(
    State(state): State<AppState>,
    _station: Station,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sha256: Option<String> = sqlx::query_scalar("SELECT sha256 FROM models WHERE id = $1")
        .bind(&id)
        .fetch_optional(&state.db.pool)
        .await
        .map_err(ApiError::database)?;
    let sha256 =
        sha256.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no model {id:?}")))?;
    let etag = HeaderValue::from_str(&format!("\"{sha256}\"")).expect("hex is a valid header");
    let cached = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    if cached {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let bytes = state
        .models
        .get(&sha256)
        .await
        .map_err(|e| ApiError::internal(format!("cannot read model {id}: {e}")))?
        .ok_or_else(|| ApiError::internal(format!("model {id}'s bytes are missing")))?;
    Ok((
        [
            (header::ETAG, etag),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
        ],
        bytes,
    )
        .into_response())
}
