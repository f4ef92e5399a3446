//! The PostgreSQL store, shared by several receiver replicas: one statement per delivery
//! (data-modifying CTEs), a batch pipelined inside one transaction, committed with the server's
//! default `synchronous_commit = on` so a 200 means the WAL record is on the server's disk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use tokio::sync::{Mutex, mpsc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Statement, Transaction};

use super::refresh::{self, Merge, Stored};
use super::schema::{
    ALERT_COLUMNS, CREATE_MIGRATIONS_TABLE, EVENT_COLUMNS, NOTIFICATION_COLUMNS, POSTGRES_MIGRATIONS, STATE_EXPR,
    alert_upsert_clause,
};
use super::{
    AlertQuery, AlertState, HistoryEntry, Job, Outcome, StoreError, finish_batch, from_json, indexed, status_from,
    take_batch, to_json,
};
use crate::receiver::metrics::ReceiverMetrics;
use crate::receiver::payload::{Delivery, Source};

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
    if batch.iter().any(|job| job.delivery.source == Source::ApiV2) {
        // A v2 alert's write depends on what the store holds (its merge), so a batch holding
        // one runs in order, each delivery after the one before it.
        let mut outcomes = Vec::with_capacity(batch.len());
        for job in batch {
            let outcome = if job.delivery.source == Source::ApiV2 {
                write_v2(&tx, &job.delivery, job.received_at).await?
            } else {
                let row = tx.query_one(stmt, &Params::new(&job.delivery, job.received_at).refs()).await?;
                if row.get::<_, i64>(0) > 0 { Outcome::Stored } else { Outcome::Duplicate }
            };
            outcomes.push(outcome);
        }
        tx.commit().await?;
        return Ok(outcomes);
    }
    // Pipelined: all statements are sent before the first answer is awaited.
    let params: Vec<Params> = batch.iter().map(|job| Params::new(&job.delivery, job.received_at)).collect();
    let results = try_join_all(params.iter().map(|p| {
        let tx = &tx;
        async move { tx.query_one(stmt, &p.refs()).await }
    }))
    .await?;
    tx.commit().await?;
    Ok(results.iter().map(|row| if row.get::<_, i64>(0) > 0 { Outcome::Stored } else { Outcome::Duplicate }).collect())
}

/// The parameters of `insert_sql` for one delivery: the notification, then its alerts as arrays.
struct Params<'a> {
    d: &'a Delivery,
    received_at: i64,
    source: &'static str,
    status: Option<&'static str>,
    truncated: i64,
    count: i32,
    fp: Vec<&'a str>,
    alert_status: Vec<&'static str>,
    starts: Vec<i64>,
    ends: Vec<Option<i64>>,
    labels: Vec<String>,
    annotations: Vec<String>,
    urls: Vec<&'a str>,
    service: Vec<Option<&'a str>>,
    namespace: Vec<Option<&'a str>>,
    version: Vec<Option<&'a str>>,
    severity: Vec<Option<&'a str>>,
}

impl<'a> Params<'a> {
    fn new(d: &'a Delivery, received_at: i64) -> Params<'a> {
        let n = d.alerts.len();
        let mut p = Params {
            d,
            received_at,
            source: d.source.as_str(),
            status: d.status.map(|s| s.as_str()),
            truncated: d.truncated_alerts as i64,
            count: n as i32,
            fp: Vec::with_capacity(n),
            alert_status: Vec::with_capacity(n),
            starts: Vec::with_capacity(n),
            ends: Vec::with_capacity(n),
            labels: Vec::with_capacity(n),
            annotations: Vec::with_capacity(n),
            urls: Vec::with_capacity(n),
            service: Vec::with_capacity(n),
            namespace: Vec::with_capacity(n),
            version: Vec::with_capacity(n),
            severity: Vec::with_capacity(n),
        };
        for a in &d.alerts {
            p.fp.push(a.fingerprint.as_str());
            p.alert_status.push(a.status.as_str());
            p.starts.push(a.starts_at);
            p.ends.push(a.ends_at);
            p.labels.push(to_json(&a.labels));
            p.annotations.push(to_json(&a.annotations));
            p.urls.push(a.generator_url.as_str());
            let ix = indexed(&a.labels);
            p.service.push(ix.service);
            p.namespace.push(ix.namespace);
            p.version.push(ix.version);
            p.severity.push(ix.severity);
        }
        p
    }

    fn refs(&self) -> [&(dyn ToSql + Sync); 20] {
        [
            &self.d.key,
            &self.source,
            &self.d.receiver,
            &self.status,
            &self.d.group_key,
            &self.d.external_url,
            &self.truncated,
            &self.count,
            &self.received_at,
            &self.fp,
            &self.alert_status,
            &self.starts,
            &self.ends,
            &self.labels,
            &self.annotations,
            &self.urls,
            &self.service,
            &self.namespace,
            &self.version,
            &self.severity,
        ]
    }
}

/// Stores a v2 alert list: each alert merged into its stored state (`refresh`), a
/// notification row and events only for the alerts that make one. The stored alert is read
/// `FOR UPDATE`, so replicas posting the same alert at once merge one after the other.
async fn write_v2(tx: &Transaction<'_>, d: &Delivery, at: i64) -> Result<Outcome, StoreError> {
    let existing: Option<i64> =
        tx.query_opt("SELECT id FROM notifications WHERE dedup_key = $1", &[&d.key]).await?.map(|r| r.get(0));
    let mut id = existing;
    let mut merges = Vec::with_capacity(d.alerts.len());
    for a in &d.alerts {
        let annotations = to_json(&a.annotations);
        let stored = tx
            .query_opt(
                "SELECT status, starts_at, ends_at, annotations, generator_url FROM alerts WHERE fingerprint = $1 \
                 FOR UPDATE",
                &[&a.fingerprint],
            )
            .await?
            .map(|r| Stored {
                status: status_from(r.get(0)),
                starts_at: r.get(1),
                ends_at: r.get(2),
                annotations: r.get(3),
                generator_url: r.get(4),
            });
        let merge = refresh::merge(stored.as_ref(), a, &annotations, existing.is_some(), at);
        match merge {
            Merge::Unchanged => {}
            Merge::Refresh { ends_at } => {
                tx.execute(
                    "UPDATE alerts SET ends_at = $2, last_notified_at = GREATEST(last_notified_at, $3) \
                     WHERE fingerprint = $1",
                    &[&a.fingerprint, &ends_at, &at],
                )
                .await?;
                tx.execute(
                    "UPDATE alert_events SET ends_at = $2 WHERE id = (SELECT id FROM alert_events \
                     WHERE fingerprint = $1 ORDER BY received_at DESC, id DESC LIMIT 1)",
                    &[&a.fingerprint, &ends_at],
                )
                .await?;
            }
            Merge::Event { starts_at } => {
                let notification_id = match id {
                    Some(id) => id,
                    None => {
                        // DO UPDATE rather than DO NOTHING, so that the id comes back also when
                        // another replica stored the same post a moment ago.
                        let row = tx
                            .query_one(
                                &format!(
                                    "INSERT INTO notifications ({NOTIFICATION_COLUMNS}) \
                                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                                     ON CONFLICT (dedup_key) DO UPDATE SET dedup_key = excluded.dedup_key RETURNING id"
                                ),
                                &[
                                    &d.key,
                                    &d.source.as_str(),
                                    &d.receiver,
                                    &d.status.map(|s| s.as_str()),
                                    &d.group_key,
                                    &d.external_url,
                                    &(d.truncated_alerts as i64),
                                    &(d.alerts.len() as i32),
                                    &at,
                                ],
                            )
                            .await?;
                        let new: i64 = row.get(0);
                        id = Some(new);
                        new
                    }
                };
                tx.execute(
                    &format!("INSERT INTO alert_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
                    &[
                        &notification_id,
                        &a.fingerprint,
                        &a.status.as_str(),
                        &starts_at,
                        &a.ends_at,
                        &annotations,
                        &a.generator_url,
                        &at,
                    ],
                )
                .await?;
                let ix = indexed(&a.labels);
                tx.execute(
                    &format!(
                        "INSERT INTO alerts ({ALERT_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1) {}",
                        alert_upsert_clause("GREATEST")
                    ),
                    &[
                        &a.fingerprint,
                        &a.status.as_str(),
                        &starts_at,
                        &a.ends_at,
                        &to_json(&a.labels),
                        &annotations,
                        &a.generator_url,
                        &ix.service,
                        &ix.namespace,
                        &ix.version,
                        &ix.severity,
                        &d.source.as_str(),
                        &at,
                    ],
                )
                .await?;
            }
        }
        merges.push(merge);
    }
    Ok(Outcome::of_merges(&merges))
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
