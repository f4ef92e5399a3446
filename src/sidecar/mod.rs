//! `redline sidecar`: wires config, logging, metrics, the proxy and the admin port together,
//! and runs the shutdown sequence (stop accepting, drain, flush telemetry, exit 0).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::proxy::route::RouteTable;
use crate::proxy::upstream::UpstreamGauges;
use crate::proxy::{self, Drain, Limits, Proxy, ProxySettings};
use crate::telemetry::logging;
use crate::telemetry::red::RedMetrics;
use crate::telemetry::spans::{self, ExportSettings, SpanCounters};
use crate::usage::{AppTarget, UsageCollector};

/// Runs the sidecar until SIGTERM or SIGINT, then drains and returns.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let logs = logging::init(&config.service, &config.log_level);
    let red = Arc::new(RedMetrics::new(&config.duration_buckets));
    let gauges = Arc::new(UpstreamGauges::default());
    let routes = Arc::new(RouteTable::new(&config.routes, config.max_routes).map_err(anyhow::Error::msg)?);
    let span_counters = Arc::new(SpanCounters::default());
    let (span_sink, span_export) = spans::start(
        ExportSettings {
            endpoint: config.tracing.endpoint.clone(),
            protocol: config.tracing.protocol,
            resource: spans::resource_attributes(
                &config.service,
                &config.version,
                &config.namespace,
                config.pod.as_deref(),
                config.tracing.resource_attributes.as_deref(),
            ),
            queue_size: config.tracing.queue_size,
            batch_size: 512,
            batch_interval: Duration::from_secs(1),
            export_timeout: config.tracing.export_timeout,
        },
        span_counters.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let settings = ProxySettings {
        spans: Some(Arc::new(span_sink)),
        propagators: config.tracing.propagators.clone(),
        upstream_authority: config.upstream.authority.clone(),
        upstream_timeout: config.upstream_timeout,
        sampler_ratio: config.tracing.sampler_ratio,
    };
    let app = match (config.app_pid, &config.app_process_name) {
        (Some(pid), _) => AppTarget::Pid(pid),
        (None, Some(name)) => AppTarget::Name(name.clone()),
        (None, None) => AppTarget::None,
    };
    let admin_state = Arc::new(AdminState {
        red: red.clone(),
        upstream_gauges: gauges.clone(),
        usage: UsageCollector::new(config.cgroup_path.clone(), app),
        log_drops: Some(logs.counter()),
        spans: Some(span_counters),
        upstream_authority: config.upstream.authority.clone(),
        draining: Default::default(),
    });

    let listeners = proxy::bind_listeners(config.listen, config.workers)
        .with_context(|| format!("listen: cannot bind {}", config.listen))?;
    let admin_listener =
        TcpListener::bind(config.admin).await.with_context(|| format!("admin: cannot bind {}", config.admin))?;
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
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = proxy::spawn_workers(
        listeners,
        || Proxy::new(&settings, routes.clone(), red.clone(), gauges.clone()),
        limits,
        stop_rx,
        config.drain_timeout,
    )
    .map_err(anyhow::Error::msg)?;

    let signal = shutdown_signal().await;
    admin_state.draining.store(true, Ordering::Relaxed);
    tracing::info!(signal, "shutdown requested; draining in-flight requests");
    let _ = stop_tx.send(true);
    let drains = tokio::task::spawn_blocking(move || workers.into_iter().map(|w| w.join()).collect::<Vec<_>>()).await?;
    if drains.iter().all(|d| matches!(d, Ok(Drain::Complete))) {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(drain_timeout = ?config.drain_timeout, "drain timed out; cutting remaining requests");
    }
    // The workers' proxies are gone; dropping the last sink lets the exporter send what is queued.
    drop(settings);
    span_export.finish(Duration::from_secs(5)).await;
    let _ = admin_stop_tx.send(());
    let _ = admin_server.await;
    // Dropping the handle flushes queued log lines before the process exits.
    drop(logs);
    Ok(())
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
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
