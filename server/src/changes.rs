//! Supervisors' changes: each runs in one transaction that takes the next number of the change
//! sequence (what stations pull by, see `protocol::PullResponse`) and writes its audit row.

use crate::{ApiError, db::Database, now_text};
use serde::Serialize;
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

    /// Writes who did `action` to `subject`, with the change's `details`, and commits.
    pub(crate) async fn commit(
        mut self,
        supervisor: &str,
        action: &str,
        subject: &str,
        details: &impl Serialize,
    ) -> Result<(), ApiError> {
        let details = serde_json::to_string(details)
            .map_err(|e| ApiError::internal(format!("cannot encode the audit details: {e}")))?;
        sqlx::query(
            "INSERT INTO audit_log (change_seq, supervisor, at, action, subject, details_json)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(self.seq)
        .bind(supervisor)
        .bind(&self.at)
        .bind(action)
        .bind(subject)
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
