//! `redline sidecar`: wires config, logging, metrics, the proxy and the admin port together,
//! and runs the shutdown sequence (stop accepting, drain, flush telemetry, exit 0).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::proxy::upstream::UpstreamGauges;
use crate::proxy::{self, Drain, Limits, Proxy, ProxySettings};
use crate::telemetry::logging;
use crate::telemetry::red::RedMetrics;
use crate::usage::{AppTarget, UsageCollector};

/// Runs the sidecar until SIGTERM or SIGINT, then drains and returns.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let logs = logging::init(&config.service, &config.log_level);
    let red = Arc::new(RedMetrics::new(&config.duration_buckets));
    let gauges = Arc::new(UpstreamGauges::default());
    let proxy = Arc::new(
        Proxy::new(
            ProxySettings {
                upstream_authority: config.upstream.authority.clone(),
                routes: config.routes.clone(),
                max_routes: config.max_routes,
                upstream_timeout: config.upstream_timeout,
                sampler_ratio: config.tracing.sampler_ratio,
            },
            red.clone(),
            gauges.clone(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    let app = match (config.app_pid, &config.app_process_name) {
        (Some(pid), _) => AppTarget::Pid(pid),
        (None, Some(name)) => AppTarget::Name(name.clone()),
        (None, None) => AppTarget::None,
    };
    let admin_state = Arc::new(AdminState {
        red,
        upstream_gauges: gauges,
        usage: UsageCollector::new(config.cgroup_path.clone(), app),
        log_drops: Some(logs.counter()),
        upstream_authority: config.upstream.authority.clone(),
        draining: Default::default(),
    });

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listen: cannot bind {}", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin)
        .await
        .with_context(|| format!("admin: cannot bind {}", config.admin))?;
    let (admin_stop_tx, admin_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let admin_server = tokio::spawn(
        axum::serve(admin_listener, admin::router(admin_state.clone()))
            .with_graceful_shutdown(async move {
                let _ = admin_stop_rx.await;
            })
            .into_future(),
    );
    tracing::info!(
        listen = %config.listen,
        admin = %config.admin,
        upstream = %config.upstream,
        version = env!("CARGO_PKG_VERSION"),
        "sidecar started"
    );

    let limits = Limits {
        max_connections: config.max_connections,
        max_header_bytes: config.max_header_bytes,
        header_read_timeout: config.header_read_timeout,
    };
    let state = admin_state.clone();
    let shutdown = async move {
        let signal = shutdown_signal().await;
        state.draining.store(true, Ordering::Relaxed);
        tracing::info!(signal, "shutdown requested; draining in-flight requests");
    };
    let drain = proxy::serve(listener, proxy, limits, shutdown, config.drain_timeout).await;
    match drain {
        Drain::Complete => tracing::info!("drained; exiting"),
        Drain::TimedOut => {
            tracing::warn!(drain_timeout = ?config.drain_timeout, "drain timed out; cutting remaining requests")
        }
    }
    let _ = admin_stop_tx.send(());
    let _ = admin_server.await;
    // Dropping the handle flushes queued log lines before the process exits.
    drop(logs);
    Ok(())
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
