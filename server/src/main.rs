use anyhow::{Context, bail};
use axum_server::tls_rustls::RustlsConfig;
use clap::{Args, Parser, Subcommand};
use linecheck_server::tls::{self, CertificateFiles};
use std::io::IsTerminal;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// The LineCheck server: the kiosk PWA, its sync API and the supervisors' review.
///
/// Without a subcommand it serves, so `linecheck-server --addr ...` keeps working.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the PWA and the API (the default).
    Serve(ServeArgs),
    /// Create a token for a station's kiosk and print it; it is shown only this once.
    EnrollStation(EnrollArgs),
    /// Create a supervisor account. The password is read from LINECHECK_SUPERVISOR_PASSWORD
    /// when set, otherwise from the first line of standard input.
    AddSupervisor(AddSupervisorArgs),
}

#[derive(Debug, Args)]
struct AddSupervisorArgs {
    /// The name the supervisor logs in with.
    name: String,
    /// Set a new password for an existing supervisor (ending their sessions).
    #[arg(long)]
    replace: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LINECHECK_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    #[command(flatten)]
    storage: StorageArgs,
    /// The built PWA (trunk's dist folder).
    #[arg(long, env = "LINECHECK_STATIC_DIR", default_value = "frontend/dist")]
    static_dir: PathBuf,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "LINECHECK_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "LINECHECK_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate for this machine's names, made in the data
    /// directory on first start and reused after: for a first trial, until the factory's CA
    /// issues one.
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
}

#[derive(Debug, Args)]
struct EnrollArgs {
    /// The station's name, as its kiosk writes it into every record (e.g. ST-04).
    #[arg(long)]
    station: String,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Args)]
struct StorageArgs {
    /// Where the snapshots, and the SQLite database unless --database-url is given, live.
    #[arg(long, env = "LINECHECK_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// A PostgreSQL database (postgres://user:password@host/name) instead of SQLite in the data
    /// directory.
    #[arg(long, env = "LINECHECK_DATABASE_URL")]
    database_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::EnrollStation(args)) => enroll_station(args).await,
        Some(Command::AddSupervisor(args)) => add_supervisor(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    linecheck_server::check_static_dir(&args.static_dir)?;
    let storage = &args.storage;
    // The certificate to serve, and the one a client must trust (a self-signed one's CA).
    let (certificate, trusted) = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => (
            Some(CertificateFiles {
                cert: cert.clone(),
                key,
            }),
            Some(cert),
        ),
        _ if args.tls_self_signed => {
            let made = tls::self_signed(&storage.data_dir, args.addr)?;
            (Some(made.server), Some(made.ca))
        }
        _ => (None, None),
    };
    // Read before anything starts, so a bad certificate stops the server with the reason.
    let tls_config = certificate
        .as_ref()
        .map(CertificateFiles::server_config)
        .transpose()?;
    let mut state =
        linecheck_server::AppState::open(&storage.data_dir, storage.database_url.as_deref())
            .await?;
    state.secure_cookies = tls_config.is_some();
    let app = linecheck_server::router(state, args.static_dir);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    // `tests/` reads the `open http://` line to find the server: keep its shape.
    match &trusted {
        None => println!("LineCheck is running: open http://{addr}/"),
        Some(trusted) => {
            let host = match tls::host_name() {
                Some(name) if addr.ip().is_unspecified() => format!("{name}:{}", addr.port()),
                _ => addr.to_string(),
            };
            println!("LineCheck is running: open https://{host}/");
            println!(
                "Tablets trust the certificate {} (SHA-256 fingerprint {})",
                trusted.display(),
                tls::fingerprint(trusted)?
            );
        }
    }
    println!("Data directory: {}", storage.data_dir.display());
    if let Some(url) = &storage.database_url {
        println!("Database: {}", linecheck_server::db::redacted(url));
    }
    let Some(tls_config) = tls_config else {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        return Ok(());
    };
    let handle = axum_server::Handle::new();
    tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown_signal().await;
            handle.graceful_shutdown(Some(Duration::from_secs(10)));
        }
    });
    axum_server::from_tcp_rustls(listener.into_std()?, RustlsConfig::from_config(tls_config))?
        .handle(handle)
        .serve(app.into_make_service())
        .await?;
    Ok(())
}

async fn enroll_station(args: EnrollArgs) -> anyhow::Result<()> {
    let storage = &args.storage;
    let db =
        linecheck_server::open_database(&storage.data_dir, storage.database_url.as_deref()).await?;
    let token = linecheck_server::auth::enroll_station(&db.pool, &args.station).await?;
    db.close().await;
    // The token alone on stdout, so a script can capture it; the advice on stderr.
    eprintln!(
        "Station {} enrolled. Enter this token on its kiosk; it is not shown again:",
        args.station.trim()
    );
    println!("{token}");
    Ok(())
}

/// The password from the environment (for scripts) or standard input's first line.
fn read_supervisor_password(name: &str) -> anyhow::Result<String> {
    const VARIABLE: &str = "LINECHECK_SUPERVISOR_PASSWORD";
    if let Ok(password) = std::env::var(VARIABLE) {
        return Ok(password);
    }
    if std::io::stdin().is_terminal() {
        eprintln!(
            "Type the password for supervisor {name} (at least {} characters; it is shown as \
             you type) and press Enter. To avoid that, set {VARIABLE} or pipe it in:\n  \
             printf '%s\\n' \"$PASSWORD\" | linecheck-server add-supervisor {name}",
            linecheck_server::supervisors::MIN_PASSWORD_CHARS
        );
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password given: set {VARIABLE} or write the password on standard input");
    }
    Ok(password)
}

async fn add_supervisor(args: AddSupervisorArgs) -> anyhow::Result<()> {
    let password = read_supervisor_password(args.name.trim())?;
    let storage = &args.storage;
    let db =
        linecheck_server::open_database(&storage.data_dir, storage.database_url.as_deref()).await?;
    let added = linecheck_server::supervisors::add_supervisor(
        &db.pool,
        &args.name,
        &password,
        args.replace,
    )
    .await;
    db.close().await;
    added?;
    let verb = if args.replace {
        "has a new password"
    } else {
        "added"
    };
    eprintln!(
        "Supervisor {} {verb}. They log in to the review area of the server's page.",
        args.name.trim()
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate.recv() => {}
    }
}
