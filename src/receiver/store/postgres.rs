//! The PostgreSQL store, shared by several receiver replicas: one statement per delivery
//! (data-modifying CTEs), a batch pipelined inside one transaction, committed with the server's
//! default `synchronous_commit = on` so a 200 means the WAL record is on the server's disk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use tokio::sync::{Mutex, mpsc};
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::schema::{
    ALERT_COLUMNS, CREATE_MIGRATIONS_TABLE, EVENT_COLUMNS, NOTIFICATION_COLUMNS, POSTGRES_MIGRATIONS, STATE_EXPR,
    alert_upsert_clause,
};
use super::{
    AlertQuery, AlertState, HistoryEntry, Job, Outcome, StoreError, finish_batch, from_json, indexed, status_from,
    take_batch, to_json,
};
use crate::receiver::metrics::ReceiverMetrics;

/// Serialises schema migrations of replicas starting together (an arbitrary constant: "redline").
const MIGRATION_LOCK: i64 = 0x0072_6564_6c69_6e65;

/// The read side: one pipelined connection, re-opened when it drops.
pub struct Readers {
    config: Config,
    client: Mutex<Option<Arc<Client>>>,
}

async fn connect(config: &Config) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %super::postgres_message(&e), "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

pub async fn open(
    mut config: Config,
    rx: mpsc::Receiver<Job>,
    metrics: Arc<ReceiverMetrics>,
) -> Result<Arc<Readers>, StoreError> {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_application_name().is_none() {
        config.application_name("redline-receiver");
    }
    let mut client = connect(&config).await?;
    migrate(&mut client).await?;
    let writer_config = config.clone();
    tokio::spawn(writer(writer_config, client, rx, metrics));
    Ok(Arc::new(Readers { config, client: Mutex::new(None) }))
}

async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(CREATE_MIGRATIONS_TABLE).await?;
    let current: i32 = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?.get(0);
    let known = POSTGRES_MIGRATIONS.len() as i32;
    if current > known {
        return Err(StoreError(format!(
            "the database has schema version {current}, newer than this redline knows ({known}): upgrade redline"
        )));
    }
    for (i, sql) in POSTGRES_MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&(i as i32 + 1), &crate::receiver::payload::now_nanos()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One statement stores a delivery: the notification row (skipped when its key exists, which
/// makes everything after it a no-op), its alert events, and the folded current state.
fn insert_sql() -> String {
    format!(
        "WITH n AS (
            INSERT INTO notifications ({NOTIFICATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (dedup_key) DO NOTHING RETURNING id
        ), a AS (
            SELECT * FROM unnest($10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::text[], $15::text[],
                                 $16::text[], $17::text[], $18::text[], $19::text[], $20::text[]) WITH ORDINALITY
                AS t(fingerprint, status, starts_at, ends_at, labels, annotations, generator_url,
                     service, namespace, version, severity, ord)
        ), e AS (
            INSERT INTO alert_events ({EVENT_COLUMNS})
            SELECT n.id, a.fingerprint, a.status, a.starts_at, a.ends_at, a.annotations, a.generator_url, $9
            FROM n, a
        ), s AS (
            INSERT INTO alerts ({ALERT_COLUMNS})
            SELECT DISTINCT ON (a.fingerprint) a.fingerprint, a.status, a.starts_at, a.ends_at, a.labels,
                a.annotations, a.generator_url, a.service, a.namespace, a.version, a.severity, $2, $9, 1
            FROM n, a ORDER BY a.fingerprint, a.starts_at DESC, a.ord DESC
            {}
        )
        SELECT count(*) FROM n",
        alert_upsert_clause("GREATEST")
    )
}

async fn writer(config: Config, client: Client, mut rx: mpsc::Receiver<Job>, metrics: Arc<ReceiverMetrics>) {
    let mut conn: Option<(Client, Statement)> = None;
    let mut first_client = Some(client);
    while let Some(first) = rx.recv().await {
        let batch = take_batch(first, &mut rx);
        if conn.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            conn = None;
            let client = match first_client.take() {
                Some(c) => Ok(c),
                None => connect(&config).await,
            };
            let prepared = match client {
                Ok(c) => match c.prepare(&insert_sql()).await {
                    Ok(stmt) => Ok((c, stmt)),
                    Err(e) => Err(StoreError::from(e)),
                },
                Err(e) => Err(e),
            };
            match prepared {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    for job in batch {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                    continue;
                }
            }
        }
        let Some((client, stmt)) = conn.as_mut() else { continue };
        let started = Instant::now();
        match write_batch(client, stmt, &batch).await {
            Ok(outcomes) => finish_batch(batch, outcomes, started, &metrics),
            // One bad delivery must not fail the others: retry each in its own transaction.
            Err(e) if batch.len() > 1 && !client.is_closed() => {
                tracing::warn!(error = %e, deliveries = batch.len(), "batch commit failed; committing one by one");
                for job in batch {
                    let started = Instant::now();
                    match write_batch(client, stmt, std::slice::from_ref(&job)).await {
                        Ok(outcomes) => finish_batch(vec![job], outcomes, started, &metrics),
                        Err(e) => {
                            let _ = job.reply.send(Err(e));
                        }
                    }
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn write_batch(client: &mut Client, stmt: &Statement, batch: &[Job]) -> Result<Vec<Outcome>, StoreError> {
    let tx = client.transaction().await?;
    // Pipelined: all statements are sent before the first answer is awaited.
    let results = try_join_all(batch.iter().map(|job| {
        let d = &job.delivery;
        let mut fp = Vec::with_capacity(d.alerts.len());
        let mut status = Vec::with_capacity(d.alerts.len());
        let mut starts = Vec::with_capacity(d.alerts.len());
        let mut ends = Vec::with_capacity(d.alerts.len());
        let mut labels = Vec::with_capacity(d.alerts.len());
        let mut annotations = Vec::with_capacity(d.alerts.len());
        let mut urls = Vec::with_capacity(d.alerts.len());
        let mut service = Vec::with_capacity(d.alerts.len());
        let mut namespace = Vec::with_capacity(d.alerts.len());
        let mut version = Vec::with_capacity(d.alerts.len());
        let mut severity = Vec::with_capacity(d.alerts.len());
        for a in &d.alerts {
            fp.push(a.fingerprint.as_str());
            status.push(a.status.as_str());
            starts.push(a.starts_at);
            ends.push(a.ends_at);
            labels.push(to_json(&a.labels));
            annotations.push(to_json(&a.annotations));
            urls.push(a.generator_url.as_str());
            let ix = indexed(&a.labels);
            service.push(ix.service);
            namespace.push(ix.namespace);
            version.push(ix.version);
            severity.push(ix.severity);
        }
        let tx = &tx;
        async move {
            tx.query_one(
                stmt,
                &[
                    &d.key,
                    &d.source.as_str(),
                    &d.receiver,
                    &d.status.map(|s| s.as_str()),
                    &d.group_key,
                    &d.external_url,
                    &(d.truncated_alerts as i64),
                    &(d.alerts.len() as i32),
                    &job.received_at,
                    &fp,
                    &status,
                    &starts,
                    &ends,
                    &labels,
                    &annotations,
                    &urls,
                    &service,
                    &namespace,
                    &version,
                    &severity,
                ],
            )
            .await
        }
    }))
    .await?;
    tx.commit().await?;
    Ok(results.iter().map(|row| if row.get::<_, i64>(0) > 0 { Outcome::Stored } else { Outcome::Duplicate }).collect())
}

impl Readers {
    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let c = Arc::new(connect(&self.config).await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.query_one("SELECT COUNT(*) FROM schema_migrations", &[]).await?;
        Ok(())
    }

    pub async fn alerts(&self, q: &AlertQuery) -> Result<Vec<AlertState>, StoreError> {
        let state = STATE_EXPR.replace("{now}", "$4");
        let sql = format!(
            "SELECT fingerprint, {state}, starts_at, ends_at, labels, annotations, generator_url, \
             last_notified_at, notifications FROM alerts \
             WHERE ($1::text IS NULL OR service = $1) AND ($2::bigint IS NULL OR last_notified_at >= $2) \
             AND ($3::text IS NULL OR {state} = $3) AND (NOT $5::bool OR severity = 'critical') \
             ORDER BY last_notified_at DESC, fingerprint LIMIT $6"
        );
        let rows = self
            .client()
            .await?
            .query(
                &sql,
                &[&q.service, &q.since, &q.state.map(|s| s.as_str()), &q.now, &q.critical_only, &(q.limit as i64)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertState {
                    fingerprint: r.get(0),
                    state: status_from(r.get(1)),
                    starts_at: r.get(2),
                    ends_at: r.get(3),
                    labels: from_json(r.get(4))?,
                    annotations: from_json(r.get(5))?,
                    generator_url: r.get(6),
                    last_notified_at: r.get(7),
                    notifications: r.get(8),
                })
            })
            .collect()
    }

    pub async fn history(&self, fingerprint: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT e.received_at, e.status, e.starts_at, e.ends_at, a.labels, e.annotations, e.generator_url, \
                 n.source, n.receiver, n.group_key FROM alert_events e JOIN notifications n ON n.id = e.notification_id \
                 JOIN alerts a ON a.fingerprint = e.fingerprint WHERE e.fingerprint = $1 ORDER BY e.received_at, e.id",
                &[&fingerprint],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryEntry {
                    received_at: r.get(0),
                    status: status_from(r.get(1)),
                    starts_at: r.get(2),
                    ends_at: r.get(3),
                    labels: from_json(r.get(4))?,
                    annotations: from_json(r.get(5))?,
                    generator_url: r.get(6),
                    source: r.get(7),
                    receiver: r.get(8),
                    group_key: r.get(9),
                })
            })
            .collect()
    }
}
