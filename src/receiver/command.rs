//! `redline receiver`: its flags, and the start (credentials, listen address, store, readiness
//! configs) and serving of the webhook receiver until a signal.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use anyhow::Context as _;

use super::auth::Credentials;
use super::metrics::ReceiverMetrics;
use super::store::Store;
use super::{http, readiness, ui};
use crate::config::keys::LOG_LEVELS;
use crate::errors::{CommandError, Outcome, Verdict};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; a non-loopback address needs credentials or --insecure-no-auth.
    #[arg(long, env = "REDLINE_RECEIVER_LISTEN", default_value = "127.0.0.1:9095")]
    pub listen: String,
    /// SQLite database file, or a postgres:// URL for a store shared by several replicas.
    #[arg(long, env = "REDLINE_RECEIVER_DB", default_value = "redline.db")]
    pub db: String,
    /// File holding the Bearer token senders and queries must present.
    #[arg(long, env = "REDLINE_RECEIVER_BEARER_TOKEN_FILE", conflicts_with = "basic_auth_file")]
    pub bearer_token_file: Option<std::path::PathBuf>,
    /// File holding `user:password` for Basic auth.
    #[arg(long, env = "REDLINE_RECEIVER_BASIC_AUTH_FILE")]
    pub basic_auth_file: Option<std::path::PathBuf>,
    /// Allow a non-loopback --listen address without credentials.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Largest accepted request body (bytes, or with a KiB/MiB suffix); larger gets 413.
    #[arg(long, env = "REDLINE_RECEIVER_MAX_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: usize,
    /// Sidecar config (or a directory of `<service>.yaml` configs) whose `readiness` section the
    /// gates run in full; without one they judge firing alerts only.
    #[arg(long, env = "REDLINE_RECEIVER_READINESS_CONFIG")]
    pub readiness_config: Option<std::path::PathBuf>,
    /// Time each HTTP request of a gate's readiness check may take.
    #[arg(long, env = "REDLINE_RECEIVER_READINESS_TIMEOUT", default_value = "5s", value_parser = crate::config::positive_duration)]
    pub readiness_timeout: std::time::Duration,
    /// How long an alert posted to /api/v2/alerts without endsAt stays firing unless posted
    /// again (Alertmanager's resolve_timeout); each post moves its end to now plus this.
    #[arg(long, env = "REDLINE_RECEIVER_RESOLVE_TIMEOUT", default_value = "5m", value_parser = crate::config::positive_duration)]
    pub resolve_timeout: std::time::Duration,
    /// error, warn, info, debug or trace.
    #[arg(long, env = "REDLINE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

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

/// Runs `redline receiver` until SIGTERM or SIGINT. Refused (exit 2) on a usage or
/// configuration error and when it cannot start (the store cannot be opened, the address
/// cannot be bound); failed (exit 1) when the server fails after it started; passes (exit 0)
/// after a graceful shutdown.
pub fn run(args: Args) -> Outcome {
    let credentials = match (&args.bearer_token_file, &args.basic_auth_file) {
        (Some(p), _) => Credentials::bearer_from_file(p),
        (None, Some(p)) => Credentials::basic_from_file(p),
        (None, None) => Ok(Credentials::None),
    }
    .map_err(CommandError::refused_msg)?;
    let addr = listen_address(&args.listen, &credentials, args.insecure_no_auth).map_err(CommandError::refused_msg)?;
    let readiness =
        readiness::ConfigSource::new(args.readiness_config.as_deref()).map_err(CommandError::refused_msg)?;
    if !LOG_LEVELS.contains(&args.log_level.as_str()) {
        return Err(CommandError::refused_msg(format_args!(
            "--log-level: expected one of {}, got {:?}",
            LOG_LEVELS.join(", "),
            args.log_level
        )));
    }
    let _log = crate::telemetry::logging::init("redline-receiver", &args.log_level);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let started = runtime.block_on(start(&args, addr)).map_err(|e| {
        tracing::error!(error = %e, "receiver cannot start");
        CommandError::refused_msg(e)
    })?;
    match runtime.block_on(serve(args, started, credentials, readiness)) {
        Ok(()) => Ok(Verdict::Pass),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "receiver stopped");
            Err(CommandError::Failed(e))
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
async fn start(args: &Args, addr: SocketAddr) -> Result<Started, String> {
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
    args: Args,
    Started { store, metrics, listener }: Started,
    credentials: Credentials,
    readiness: readiness::ConfigSource,
) -> anyhow::Result<()> {
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
        resolve_timeout: args.resolve_timeout,
        reports: readiness::LatestReports::default(),
    });
    let routes = http::router(app.clone()).merge(ui::router(app));
    axum::serve(listener, routes).with_graceful_shutdown(shutdown()).await.context("HTTP server")?;
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
