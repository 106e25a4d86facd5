//! Supervisors' changes: each runs in one transaction that takes the next number of the change
//! sequence (what stations pull by, see `protocol::PullResponse`) and writes its audit row.

use crate::{ApiError, db::Database, now_text};
use protocol::AuditChange;
use sqlx::{Any, Transaction};

/// One change in progress: commit it with [`Change::commit`], or drop it to roll back.
pub(crate) struct Change {
    pub(crate) tx: Transaction<'static, Any>,
    /// This change's number in the change sequence.
    pub(crate) seq: i64,
    pub(crate) at: String,
}

impl Change {
    /// Starts a change and takes its number. The counter's row stays locked until the change
    /// commits, so changes commit in the order of their numbers.
    pub(crate) async fn begin(db: &Database) -> Result<Change, ApiError> {
        let mut tx = db
            .pool
            .begin_with(db.dialect.begin_write())
            .await
            .map_err(ApiError::database)?;
        let seq: i64 = sqlx::query_scalar(
            "UPDATE change_counter SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(ApiError::database)?;
        Ok(Change {
            tx,
            seq,
            at: now_text(),
        })
    }

    /// Writes who made `change` to `subject` (of `station`, if it concerns one), and commits.
    pub(crate) async fn commit(
        mut self,
        supervisor: &str,
        subject: &str,
        station: Option<&str>,
        change: &AuditChange,
    ) -> Result<(), ApiError> {
        // Stored as its kind and its details, the columns the audit trail is read by; the
        // details straight from the request (through a JSON value, an f32 would gain digits).
        let details = match change {
            AuditChange::CorrectInspection(action) => serde_json::to_string(action),
            AuditChange::UploadModel(model) => serde_json::to_string(model),
            AuditChange::AssignStation(request) => serde_json::to_string(request),
        }
        .map_err(|e| ApiError::internal(format!("cannot encode the audit details: {e}")))?;
        sqlx::query(
            "INSERT INTO audit_log (change_seq, supervisor, at, action, subject, station,
               details_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(self.seq)
        .bind(supervisor)
        .bind(&self.at)
        .bind(change.kind())
        .bind(subject)
        .bind(station)
        .bind(details)
        .execute(&mut *self.tx)
        .await
        .map_err(ApiError::database)?;
        self.tx.commit().await.map_err(ApiError::database)
    }
}

/// The highest change number committed so far.
pub(crate) async fn committed_head(db: &Database) -> Result<i64, ApiError> {
    sqlx::query_scalar("SELECT value FROM change_counter WHERE id = 1")
        .fetch_one(&db.pool)
        .await
        .map_err(ApiError::database)
}
