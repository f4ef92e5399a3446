//! `redline sidecar`: wires config, logging, metrics, the proxy and the admin port together,
//! and runs the shutdown sequence (stop accepting, drain, flush telemetry, exit 0).

pub mod command;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::errors::BindError;
use crate::proxy::conn::{ConnCounters, ConnLimits};
use crate::proxy::route::RouteTable;
use crate::proxy::upstream::UpstreamGauges;
use crate::proxy::{self, Drain, Limits, Proxy, ProxySettings};
use crate::rules::engine::{EngineSettings, RuleEngine};
use crate::rules::notifier::{self, Notifier};
use crate::rules::service::{self, RuleService, Sampler};
use crate::telemetry::logging;
use crate::telemetry::metrics::ExpositionWriter;
use crate::telemetry::otlp::ExportSettings;
use crate::telemetry::red::RedMetrics;
use crate::telemetry::spans::{self, SpanCounters};
use crate::usage::{AppTarget, UsageCollector};

/// The sidecar refused to start because of its configuration or rule files (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupRefused(pub String);

/// Runs the sidecar until SIGTERM or SIGINT, then drains and returns. Its errors are start
/// failures (rule files, routes, the exporter, a port in use), bar a proxy worker that panicked
/// while draining: once started, it stops on a signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let logs = logging::init(&config.service, &config.log_level);
    let rules = load_rules(&config)?;
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
            tls: config.tracing.tls.clone(),
        },
        span_counters.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    let connections = Arc::new(ConnCounters::default());
    let settings = ProxySettings {
        spans: Some(Arc::new(span_sink)),
        propagators: config.tracing.propagators.clone(),
        upstream_authority: config.upstream.authority.clone(),
        upstream_protocol: config.upstream_protocol,
        upstream_timeout: config.upstream_timeout,
        stream_idle_timeout: config.stream_idle_timeout,
        sampler_ratio: config.tracing.sampler_ratio,
        access_log: Arc::new(logs.access_log(&config.service)),
    };
    let app = match (config.app_pid, &config.app_process_name) {
        (Some(pid), _) => AppTarget::Pid(pid),
        (None, Some(name)) => AppTarget::Name(name.clone()),
        (None, None) => AppTarget::None,
    };
    let admin_state = Arc::new(AdminState {
        red: red.clone(),
        upstream_gauges: gauges.clone(),
        connections: connections.clone(),
        usage: UsageCollector::new(config.cgroup_path.clone(), app),
        log_drops: Some(logs.counter()),
        spans: Some(span_counters),
        upstream_authority: config.upstream.authority.clone(),
        health_check: config.upstream_health_check.clone(),
        rules: rules.clone(),
        draining: Default::default(),
    });
    let (rules_stop_tx, rules_stop_rx) = tokio::sync::watch::channel(false);
    if let Some(rules) = &rules {
        let state = admin_state.clone();
        let sampler: Sampler = Arc::new(move |wanted| {
            let mut w = ExpositionWriter::capture(wanted);
            admin::write_all(&state, &mut w);
            w.into_samples()
        });
        tokio::spawn(rules.clone().run(sampler, rules_stop_rx));
        tokio::spawn(reload_on_sighup(rules.clone()));
    }

    let listeners = proxy::bind_listeners(config.listen, config.workers).map_err(|error| BindError {
        key: "listen",
        addr: config.listen,
        error,
    })?;
    let admin_listener =
        TcpListener::bind(config.admin).await.map_err(|error| BindError { key: "admin", addr: config.admin, error })?;
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
        deadlines: ConnLimits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            stream_idle_timeout: config.stream_idle_timeout,
        },
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = proxy::spawn_workers(
        listeners,
        || Proxy::new(&settings, routes.clone(), red.clone(), gauges.clone(), connections.clone()),
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
    let _ = rules_stop_tx.send(true);
    let flushes = async {
        if let Some(rules) = &rules {
            rules.notifier.flush(Duration::from_secs(5)).await;
        }
    };
    tokio::join!(span_export.finish(Duration::from_secs(5)), flushes);
    let _ = admin_stop_tx.send(());
    let _ = admin_server.await;
    // Dropping the handle flushes queued log lines before the process exits.
    drop(logs);
    Ok(())
}

/// Loads the configured rule files and the SLO rules, and starts the notifier; no rule files
/// and no `slo` configured, no engine.
fn load_rules(config: &Config) -> anyhow::Result<Option<Arc<RuleService>>> {
    let generated = slo_rules(config)?;
    if config.rules.is_empty() && generated.is_empty() {
        return Ok(None);
    }
    let mut external_labels = std::collections::BTreeMap::new();
    external_labels.insert("service".to_string(), config.service.clone());
    external_labels.insert("version".to_string(), config.version.clone());
    external_labels.insert("namespace".to_string(), config.namespace.clone());
    if let Some(pod) = &config.pod {
        external_labels.insert("pod".to_string(), pod.clone());
    }
    let external_url = admin_url(config);
    let generator_base = config.readiness.prometheus_url.as_ref().map_or_else(|| external_url.clone(), |u| u.0.clone());
    let settings = EngineSettings {
        patterns: config.rules.clone(),
        generated,
        default_interval_ms: config.sample_interval.as_millis() as i64,
        retention_ms: config.retention.as_millis() as i64,
        external_labels,
        external_url,
        generator_base,
    };
    let engine = RuleEngine::load(settings, service::now_ms()).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        StartupRefused(format!("rules: cannot load the rule files:\n{}", list.join("\n")))
    })?;
    let n: usize = engine.groups.iter().map(|g| g.state.group.rules.len()).sum();
    tracing::info!(groups = engine.groups.len(), rules = n, horizon_ms = engine.store.horizon_ms(), "rules loaded");
    let alertmanagers: Vec<String> = config.alertmanagers.iter().map(|u| u.0.clone()).collect();
    let notifier = Notifier::start(&alertmanagers, notifier::QUEUE_CAPACITY).map_err(StartupRefused)?;
    Ok(Some(RuleService::new(engine, notifier, config.sample_interval)))
}

/// The SLO rules of the `slo` section, shown as the rule file `slo`: only when SLOs are
/// configured (with the default 1h `retention` the 3-day window could not be evaluated), and
/// refused naming the keys when `retention` or `sample_interval` cannot serve their windows.
fn slo_rules(config: &Config) -> Result<Vec<(String, String)>, StartupRefused> {
    if !config.slo.configured {
        return Ok(Vec::new());
    }
    let period = config.slo.period;
    let longest = crate::slo::longest_window(period);
    if longest > config.retention {
        return Err(StartupRefused(format!(
            "slo: the SLO rules read {longest} of history (their longest window, a tenth of slo.period {period}) \
             but retention is {retention}; raise retention to at least {longest}, shorten slo.period, or leave `slo` \
             out of the sidecar's configuration and evaluate `redline rules slo` in Prometheus",
            longest = crate::slo::prom_duration(longest),
            period = crate::slo::prom_duration(period),
            retention = crate::slo::prom_duration(config.retention),
        )));
    }
    let shortest = crate::slo::shortest_window(period);
    if shortest < config.sample_interval * 2 {
        return Err(StartupRefused(format!(
            "slo.period: the shortest SLO window is {} (1/8640 of slo.period {}), under two sample_interval ({}): \
             a rate needs two samples in it; lengthen slo.period or shorten sample_interval",
            crate::slo::prom_duration(shortest),
            crate::slo::prom_duration(period),
            crate::slo::prom_duration(config.sample_interval),
        )));
    }
    let text = crate::slo::rule_file(&config.slo.slos(), &config.duration_buckets).map_err(StartupRefused)?;
    Ok(vec![("slo".to_string(), text)])
}

/// The URL this sidecar's admin port is reached at, for `$externalURL` and `generatorURL`.
fn admin_url(config: &Config) -> String {
    let host = if config.admin.ip().is_unspecified() {
        config
            .pod
            .clone()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
            .unwrap_or_else(|| "localhost".to_string())
    } else {
        config.admin.ip().to_string()
    };
    format!("http://{host}:{}", config.admin.port())
}

async fn reload_on_sighup(rules: Arc<RuleService>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        let rules = rules.clone();
        let _ = tokio::task::spawn_blocking(move || rules.reload()).await;
    }
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
