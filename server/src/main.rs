use anyhow::Context;
use clap::Parser;
use std::{net::SocketAddr, path::PathBuf};

/// The LineCheck server: the kiosk PWA, its sync API and the supervisors' review.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "LINECHECK_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where the SQLite database (and later snapshots) live.
    #[arg(long, env = "LINECHECK_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// The built PWA (trunk's dist folder).
    #[arg(long, env = "LINECHECK_STATIC_DIR", default_value = "frontend/dist")]
    static_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    linecheck_server::check_static_dir(&args.static_dir)?;
    let db = linecheck_server::open_database(&args.data_dir).await?;
    let app = linecheck_server::router(linecheck_server::AppState { db }, args.static_dir);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    println!("LineCheck is running: open http://{addr}/");
    println!("Data directory: {}", args.data_dir.display());
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
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
