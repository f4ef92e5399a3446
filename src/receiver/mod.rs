//! `redline receiver`: an Alertmanager webhook receiver that stores every notification durably
//! (SQLite or PostgreSQL) and answers promotion gates; `redline alerts list` queries it.

pub mod auth;
pub mod client;
pub mod gates;
pub mod http;
pub mod metrics;
pub mod payload;
pub mod readiness;
pub mod store;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;

use crate::cli::ReceiverArgs;
use auth::Credentials;
use metrics::ReceiverMetrics;
use store::Store;

/// Parses a byte size: a plain number of bytes, or one with a KiB/MiB/GiB (or K/M/G) suffix.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits.parse().map_err(|_| format!("expected a size such as 1048576 or 1MiB, got {s:?}"))?;
    let factor: usize = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (expected KiB, MiB or GiB)")),
    };
    n.checked_mul(factor).filter(|n| *n > 0).ok_or_else(|| format!("size {s:?} is zero or too large"))
}

/// Resolves `--listen` and refuses a non-loopback address without credentials (unless the
/// operator said `--insecure-no-auth`): alert data and the store must not be open to a network.
pub fn listen_address(listen: &str, credentials: &Credentials, insecure_no_auth: bool) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> =
        listen.to_socket_addrs().map_err(|e| format!("--listen {listen:?}: expected HOST:PORT ({e})"))?.collect();
    let addr = *addrs.first().ok_or_else(|| format!("--listen {listen:?}: the name resolves to no address"))?;
    if credentials.is_none() && !insecure_no_auth && !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(format!(
            "--listen {listen}: refusing to listen on a non-loopback address without credentials; \
             give --bearer-token-file or --basic-auth-file, or --insecure-no-auth to accept the risk"
        ));
    }
    Ok(addr)
}

/// `--db` for logs: a PostgreSQL URL loses its user and password.
pub fn redact_db(db: &str) -> String {
    match (db.find("://"), db.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &db[..scheme], &db[at + 1..]),
        _ => db.to_string(),
    }
}

/// Entry point of `redline receiver`: exit 2 on a usage or configuration error and when it
/// cannot start (the store cannot be opened, the address cannot be bound), 1 when the server
/// fails after it started, 0 after a graceful shutdown.
pub fn main(args: ReceiverArgs) -> ExitCode {
    let credentials = match (&args.bearer_token_file, &args.basic_auth_file) {
        (Some(p), _) => Credentials::bearer_from_file(p),
        (None, Some(p)) => Credentials::basic_from_file(p),
        (None, None) => Ok(Credentials::None),
    };
    let credentials = match credentials {
        Ok(c) => c,
        Err(e) => {
            eprintln!("redline receiver: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = match listen_address(&args.listen, &credentials, args.insecure_no_auth) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("redline receiver: {e}");
            return ExitCode::from(2);
        }
    };
    let readiness = match readiness::ConfigSource::new(args.readiness_config.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("redline receiver: {e}");
            return ExitCode::from(2);
        }
    };
    if !matches!(args.log_level.as_str(), "error" | "warn" | "info" | "debug" | "trace") {
        eprintln!(
            "redline receiver: --log-level: expected one of error, warn, info, debug, trace, got {:?}",
            args.log_level
        );
        return ExitCode::from(2);
    }
    let _log = crate::telemetry::logging::init("redline-receiver", &args.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redline receiver: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let started = match runtime.block_on(start(&args, addr)) {
        Ok(started) => started,
        Err(e) => {
            tracing::error!(error = %e, "receiver cannot start");
            eprintln!("redline receiver: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(args, started, credentials, readiness)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "receiver stopped");
            eprintln!("redline receiver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What must work for the receiver to start: the store open, the address bound.
struct Started {
    store: Store,
    metrics: Arc<ReceiverMetrics>,
    listener: tokio::net::TcpListener,
}

/// Opens the store and binds the listener; the error names the flag at fault.
async fn start(args: &ReceiverArgs, addr: SocketAddr) -> Result<Started, String> {
    let metrics = Arc::new(ReceiverMetrics::default());
    let store = Store::open(&args.db, metrics.clone())
        .await
        .map_err(|e| format!("--db {}: cannot open the store: {e}", redact_db(&args.db)))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| crate::errors::BindError { key: "--listen", addr, error }.to_string())?;
    Ok(Started { store, metrics, listener })
}

async fn serve(
    args: ReceiverArgs,
    Started { store, metrics, listener }: Started,
    credentials: Credentials,
    readiness: readiness::ConfigSource,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let addr = listener.local_addr()?;
    let auth = match credentials {
        Credentials::None => "none",
        Credentials::Bearer(_) => "bearer",
        Credentials::Basic(_) => "basic",
    };
    tracing::info!(
        listen = %listener.local_addr().unwrap_or(addr),
        store = store.kind(),
        db = %redact_db(&args.db),
        auth,
        max_body = args.max_body as u64,
        readiness_config = %readiness.describe(),
        "receiver listening"
    );
    let app = Arc::new(http::App {
        store,
        credentials,
        max_body: args.max_body,
        metrics,
        readiness,
        readiness_timeout: args.readiness_timeout,
    });
    axum::serve(listener, http::router(app)).with_graceful_shutdown(shutdown()).await.context("HTTP server")?;
    tracing::info!("receiver stopped");
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("1 parsec").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn non_loopback_needs_credentials_or_the_explicit_flag() {
        let none = Credentials::None;
        assert!(listen_address("127.0.0.1:9095", &none, false).is_ok());
        assert!(listen_address("[::1]:9095", &none, false).is_ok());
        let err = listen_address("0.0.0.0:9095", &none, false).expect_err("refused");
        assert!(err.contains("--insecure-no-auth"), "{err}");
        assert!(listen_address("0.0.0.0:9095", &none, true).is_ok());
        assert!(listen_address("0.0.0.0:9095", &Credentials::Bearer([0; 32]), false).is_ok());
        assert!(listen_address("nonsense", &none, false).is_err());
    }

    #[test]
    fn database_urls_lose_their_secrets_in_logs() {
        assert_eq!(redact_db("postgres://u:p@db:5432/x"), "postgres://***@db:5432/x");
        assert_eq!(redact_db("redline.db"), "redline.db");
    }
}
