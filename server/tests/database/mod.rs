//! The databases the server tests run on: SQLite in the data directory, and a real PostgreSQL
//! server that this test process starts once (`initdb` + `pg_ctl`, Debian's `postgresql`) and that
//! stops when the process exits. A test that needs PostgreSQL fails when it cannot start one: CI
//! installs the package, so a missing server is a broken machine, not a reason to pass.

use sqlx::{Connection, Executor};
use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{ChildStdin, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A new, empty database for one test: `None` for the server's default, SQLite in its data
    /// directory; a fresh database on the test PostgreSQL server otherwise.
    pub async fn fresh_url(self) -> Option<String> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres_database().await),
        }
    }
}

/// Runs each listed `async fn name(backend: Backend)` as two tests, `sqlite::name` and
/// `postgres::name`. A test function left out of the list is dead code, which clippy refuses.
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::database::Backend::Sqlite).await
            })+
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::database::Backend::Postgres).await
            })+
        }
    };
}
pub(crate) use on_both_databases;

struct Cluster {
    port: u16,
    /// Its closing (when this process exits, however it exits) stops the server; see `start`.
    _stop_on_exit: ChildStdin,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

async fn fresh_postgres_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let cluster = CLUSTER
        .get_or_init(start)
        .as_ref()
        .unwrap_or_else(|e| panic!("cannot start the test PostgreSQL server: {e}"));
    let url = |db: &str| format!("postgres://postgres@127.0.0.1:{}/{db}", cluster.port);
    let name = format!("linecheck_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    // One connection per call, not a shared pool: each tokio test has its own runtime, and a
    // pool's connections die with the runtime that opened them.
    let mut admin = sqlx::PgConnection::connect(&url("postgres")).await.unwrap();
    admin
        // The name is ours, made of a counter: safe to format into the statement.
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    admin.close().await.unwrap();
    url(&name)
}

/// PostgreSQL's programs: Debian installs them outside PATH, one folder per major version.
fn pg_bin_dir() -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e}; install Debian's postgresql package"))?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    dirs.sort_by_key(|bin| {
        let version = bin.parent().and_then(Path::file_name);
        version.and_then(|v| v.to_str()?.parse::<u32>().ok())
    });
    dirs.pop()
        .ok_or_else(|| "no /usr/lib/postgresql/*/bin/initdb: install postgresql".into())
}

fn start() -> Result<Cluster, String> {
    let bin = pg_bin_dir()?;
    let dir = tempfile::Builder::new()
        .prefix("linecheck-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    // PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user that
    // Debian's package creates, and owns its folder.
    let as_root = std::fs::metadata("/proc/self")
        .map_err(|e| e.to_string())?
        .uid()
        == 0;
    let command = |program: &str| {
        let program = bin.join(program);
        let mut command = if as_root {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(program);
            runuser
        } else {
            Command::new(program)
        };
        command.stdin(Stdio::null());
        command
    };
    if as_root {
        run(Command::new("chown").arg("postgres:").arg(&dir))?;
    }
    let data = dir.join("data");
    run(command("initdb").arg("-D").arg(&data).args([
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    ]))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // The socket in our own folder (the default one may not exist or be writable); no fsync:
    // this server's data is thrown away, its durability is not what the tests check.
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
        dir.display()
    );
    let log = dir.join("postgres.log");
    let started = run(command("pg_ctl")
        .args(["start", "-w", "-t", "60", "-D"])
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .args(["-o", &options]));
    if let Err(e) = started {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(format!("{e}\n{log}"));
    }
    // A watchdog shell waits for its stdin to close, which happens when this process exits
    // (normally, on a panic or killed), then stops the server and removes its folder.
    let stop = command("pg_ctl");
    let mut stop_args = vec![stop.get_program().to_owned()];
    stop_args.extend(stop.get_args().map(ToOwned::to_owned));
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(r#"read _; "$@" stop -m immediate -D "$DATA" >/dev/null; rm -rf "$DIR""#)
        .arg("sh")
        .args(stop_args)
        .env("DATA", &data)
        .env("DIR", &dir)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("sh: {e}"))?;
    Ok(Cluster {
        port,
        _stop_on_exit: watchdog.stdin.take().expect("piped"),
    })
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{:?}: {e}", command.get_program()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
