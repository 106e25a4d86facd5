//! The database: SQLite in the data directory by default, PostgreSQL when given a `postgres://`
//! URL. One set of queries serves both through sqlx's `Any` driver: the SQL is portable (`$N`
//! placeholders, which SQLite accepts too; `ON CONFLICT`), and the migrations are the same files.
//! What truly differs, how a write transaction starts, is in [`Dialect`].

use anyhow::{Context, bail};
use sqlx::{AnyPool, ConnectOptions, Executor, any::AnyPoolOptions, sqlite::SqliteConnectOptions};
use std::path::Path;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The name `/healthz` reports.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// Starts a write transaction: a push's, or a supervisor's change (`changes.rs`).
    ///
    /// SQLite: IMMEDIATE takes the write lock up front, so the transaction cannot fail half-way on
    /// upgrading a read lock while another push writes. Pushes are serialized database-wide.
    ///
    /// PostgreSQL: READ COMMITTED, named so a server-wide `default_transaction_isolation` cannot
    /// change it. Every write of a push is a single statement that the constraints decide
    /// atomically (`ON CONFLICT DO NOTHING` on the id and on `(device_id, sequence)`, the cursor
    /// upsert), and read committed lets the reads after a conflict see the row that won it.
    /// REPEATABLE READ or SERIALIZABLE would turn exactly those conflicts into serialization
    /// errors (a 500 and a retry) without adding any guarantee. `lock_station` makes concurrent
    /// pushes of one device (a kiosk retrying while its first request still runs) wait for each
    /// other, so they cannot deadlock on each other's rows; different devices run in parallel.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL READ COMMITTED",
        }
    }
}

/// A connection pool and what it speaks.
#[derive(Clone)]
pub struct Database {
    pub pool: AnyPool,
    pub dialect: Dialect,
}

/// The default database: `linecheck.db` in `data_dir`, created if missing.
pub fn sqlite_url(data_dir: &Path) -> String {
    SqliteConnectOptions::new()
        .filename(data_dir.join("linecheck.db"))
        .create_if_missing(true)
        .to_url_lossy()
        .into()
}

impl Database {
    /// Connects to `url` (`sqlite:` or `postgres://`) and brings its schema up to date.
    pub async fn open(url: &str) -> anyhow::Result<Database> {
        let dialect = match url.split_once(':').map(|(scheme, _)| scheme) {
            Some("sqlite") => Dialect::Sqlite,
            Some("postgres" | "postgresql") => Dialect::Postgres,
            _ => bail!("the database URL must start with postgres:// or sqlite: ({url:?})"),
        };
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // Writers wait their turn for SQLite's one write lock instead of failing
                        // with "database is locked" after sqlx's 5 s: with fifty kiosks flushing
                        // backlogs at once, a push can queue for longer than that.
                        connection.execute("PRAGMA busy_timeout = 60000").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .with_context(|| format!("cannot open the database {}", redacted(url)))?;
        if dialect == Dialect::Sqlite {
            // WAL: readers (supervisors) never block the writer (kiosk sync), and a crash loses
            // nothing that was committed. The mode is stored in the file, so once is enough.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("cannot migrate the database {}", redacted(url)))?;
        Ok(Database { pool, dialect })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `url` without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.into()
        }
        _ => url.to_owned(),
    }
}
