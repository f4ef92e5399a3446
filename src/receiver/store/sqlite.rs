//! The embedded SQLite store: WAL journal with `synchronous=FULL`, so a commit has reached the
//! disk (WAL fsynced) before any delivery in it is answered 200. One writer thread, pooled readers.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;

use super::refresh::{self, Merge, Stored};
use super::schema::{
    ALERT_COLUMNS, CREATE_MIGRATIONS_TABLE, EVENT_COLUMNS, NOTIFICATION_COLUMNS, SQLITE_MIGRATIONS, STATE_EXPR,
    alert_upsert_clause,
};
use super::{
    AlertQuery, AlertState, HistoryEntry, Job, Outcome, StoreError, finish_batch, from_json, indexed, status_from,
    take_batch, to_json,
};
use crate::receiver::metrics::ReceiverMetrics;
use crate::receiver::payload::{Delivery, Source};

/// Read connections, opened on demand and reused.
pub struct Readers {
    path: String,
    idle: Mutex<Vec<Connection>>,
}

pub fn open(path: &str, rx: mpsc::Receiver<Job>, metrics: Arc<ReceiverMetrics>) -> Result<Arc<Readers>, StoreError> {
    let mut conn = Connection::open(path).map_err(|e| StoreError(format!("SQLite: {e}")))?;
    // WAL lets readers run beside the writer. synchronous=FULL makes every commit fsync the
    // WAL, so a committed delivery survives a crash of the machine, not only of the process
    // (NORMAL would only survive the latter). Group commit pays for the fsync once per batch.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError(format!("{path}: SQLite refused WAL mode (got {mode})")));
    }
    // Checkpoints (copying the WAL into the database file, with its own fsync) run on a
    // separate connection so the writer never stalls on one while deliveries wait.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
         PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 0;",
    )?;
    migrate(&mut conn)?;
    let checkpointer = Connection::open(path)?;
    checkpointer.execute_batch("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;")?;
    std::thread::Builder::new()
        .name("redline-sqlite-checkpoint".into())
        .spawn(move || checkpoints(checkpointer))
        .map_err(|e| StoreError(format!("cannot start the SQLite checkpoint thread: {e}")))?;
    std::thread::Builder::new()
        .name("redline-sqlite-writer".into())
        .spawn(move || writer(conn, rx, &metrics))
        .map_err(|e| StoreError(format!("cannot start the SQLite writer thread: {e}")))?;
    Ok(Arc::new(Readers { path: path.to_string(), idle: Mutex::new(Vec::new()) }))
}

/// WAL frames (4 KiB pages) after which a checkpoint also resets the WAL: 64 MiB.
const WAL_RESET_FRAMES: i64 = 16 * 1024;

/// Checkpoints the WAL every 200 ms. PASSIVE never blocks the writer or readers, but under a
/// steady stream of commits it never catches up, so the WAL would grow without bound; past
/// [`WAL_RESET_FRAMES`] a TRUNCATE checkpoint briefly holds the writer back and empties it.
fn checkpoints(conn: Connection) {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let run = |mode: &str| -> rusqlite::Result<i64> {
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get::<_, i64>(1))
        };
        let result =
            run("PASSIVE").and_then(|frames| if frames > WAL_RESET_FRAMES { run("TRUNCATE") } else { Ok(frames) });
        if let Err(e) = result {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(CREATE_MIGRATIONS_TABLE, [])?;
    let current: i64 = tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    let known = SQLITE_MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError(format!(
            "the database has schema version {current}, newer than this redline knows ({known}): upgrade redline"
        )));
    }
    for (i, sql) in SQLITE_MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![i as i64 + 1, crate::receiver::payload::now_nanos()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn writer(mut conn: Connection, mut rx: mpsc::Receiver<Job>, metrics: &ReceiverMetrics) {
    while let Some(first) = rx.blocking_recv() {
        let batch = take_batch(first, &mut rx);
        let started = Instant::now();
        match write_batch(&mut conn, &batch) {
            Ok(outcomes) => finish_batch(batch, outcomes, started, metrics),
            // One bad delivery must not fail the others: retry each in its own transaction.
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, deliveries = batch.len(), "batch commit failed; committing one by one");
                for job in batch {
                    let started = Instant::now();
                    match write_batch(&mut conn, std::slice::from_ref(&job)) {
                        Ok(outcomes) => finish_batch(vec![job], outcomes, started, metrics),
                        Err(e) => {
                            let _ = job.reply.send(Err(e.into()));
                        }
                    }
                }
            }
            Err(e) => {
                let e = StoreError::from(e);
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[Job]) -> rusqlite::Result<Vec<Outcome>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut notification = tx.prepare_cached(&format!(
            "INSERT INTO notifications ({NOTIFICATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (dedup_key) DO NOTHING"
        ))?;
        let mut event = tx.prepare_cached(&format!(
            "INSERT INTO alert_events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))?;
        let mut upsert = tx.prepare_cached(&format!(
            "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1) {}",
            alert_upsert_clause("MAX")
        ))?;
        for job in batch {
            let d: &Delivery = &job.delivery;
            let at = job.received_at;
            if d.source == Source::ApiV2 {
                outcomes.push(write_v2(&tx, d, at)?);
                continue;
            }
            let inserted = notification.execute(notification_row(d, at))?;
            if inserted == 0 {
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            let id = tx.last_insert_rowid();
            for a in &d.alerts {
                let labels = to_json(&a.labels);
                let annotations = to_json(&a.annotations);
                event.execute(params![
                    id,
                    a.fingerprint,
                    a.status.as_str(),
                    a.starts_at,
                    a.ends_at,
                    annotations,
                    a.generator_url,
                    at
                ])?;
                let ix = indexed(&a.labels);
                upsert.execute(params![
                    a.fingerprint,
                    a.status.as_str(),
                    a.starts_at,
                    a.ends_at,
                    labels,
                    annotations,
                    a.generator_url,
                    ix.service,
                    ix.namespace,
                    ix.version,
                    ix.severity,
                    d.source.as_str(),
                    at,
                ])?;
            }
            outcomes.push(Outcome::Stored);
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

/// The `notifications` row of a delivery, in NOTIFICATION_COLUMNS order.
fn notification_row(d: &Delivery, at: i64) -> impl rusqlite::Params + '_ {
    (
        &d.key,
        d.source.as_str(),
        &d.receiver,
        d.status.map(|s| s.as_str()),
        &d.group_key,
        &d.external_url,
        d.truncated_alerts as i64,
        d.alerts.len() as i64,
        at,
    )
}

/// Stores a v2 alert list: each alert merged into its stored state (`refresh`), a
/// notification row and events only for the alerts that make one.
fn write_v2(tx: &rusqlite::Transaction, d: &Delivery, at: i64) -> rusqlite::Result<Outcome> {
    let existing: Option<i64> = tx
        .prepare_cached("SELECT id FROM notifications WHERE dedup_key = ?1")?
        .query_row(params![d.key], |r| r.get(0))
        .optional()?;
    let mut id = existing;
    let mut merges = Vec::with_capacity(d.alerts.len());
    for a in &d.alerts {
        let annotations = to_json(&a.annotations);
        let stored = tx
            .prepare_cached(
                "SELECT status, starts_at, ends_at, annotations, generator_url FROM alerts WHERE fingerprint = ?1",
            )?
            .query_row(params![a.fingerprint], |r| {
                Ok(Stored {
                    status: status_from(&r.get::<_, String>(0)?),
                    starts_at: r.get(1)?,
                    ends_at: r.get(2)?,
                    annotations: r.get(3)?,
                    generator_url: r.get(4)?,
                })
            })
            .optional()?;
        let merge = refresh::merge(stored.as_ref(), a, &annotations, existing.is_some(), at);
        match merge {
            Merge::Unchanged => {}
            Merge::Refresh { ends_at } => {
                tx.prepare_cached(
                    "UPDATE alerts SET ends_at = ?2, last_notified_at = MAX(last_notified_at, ?3) WHERE fingerprint = ?1",
                )?
                .execute(params![a.fingerprint, ends_at, at])?;
                tx.prepare_cached(
                    "UPDATE alert_events SET ends_at = ?2 WHERE id = (SELECT id FROM alert_events \
                     WHERE fingerprint = ?1 ORDER BY received_at DESC, id DESC LIMIT 1)",
                )?
                .execute(params![a.fingerprint, ends_at])?;
            }
            Merge::Event { starts_at } => {
                let notification_id = match id {
                    Some(id) => id,
                    None => {
                        tx.prepare_cached(&format!(
                            "INSERT INTO notifications ({NOTIFICATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                        ))?
                        .execute(notification_row(d, at))?;
                        let new = tx.last_insert_rowid();
                        id = Some(new);
                        new
                    }
                };
                tx.prepare_cached(&format!(
                    "INSERT INTO alert_events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ))?
                .execute(params![
                    notification_id,
                    a.fingerprint,
                    a.status.as_str(),
                    starts_at,
                    a.ends_at,
                    annotations,
                    a.generator_url,
                    at
                ])?;
                let ix = indexed(&a.labels);
                tx.prepare_cached(&format!(
                    "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1) {}",
                    alert_upsert_clause("MAX")
                ))?
                .execute(params![
                    a.fingerprint,
                    a.status.as_str(),
                    starts_at,
                    a.ends_at,
                    to_json(&a.labels),
                    annotations,
                    a.generator_url,
                    ix.service,
                    ix.namespace,
                    ix.version,
                    ix.severity,
                    d.source.as_str(),
                    at,
                ])?;
            }
        }
        merges.push(merge);
    }
    Ok(Outcome::of_merges(&merges))
}

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c
            }
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 8
        {
            idle.push(conn);
        }
        result
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
    }

    pub fn alerts(&self, q: &AlertQuery) -> Result<Vec<AlertState>, StoreError> {
        self.with(|c| {
            let state = STATE_EXPR.replace("{now}", "?4");
            let mut stmt = c.prepare_cached(&format!(
                "SELECT fingerprint, {state}, starts_at, ends_at, labels, annotations, generator_url, \
                 last_notified_at, notifications FROM alerts \
                 WHERE (?1 IS NULL OR service = ?1) AND (?2 IS NULL OR last_notified_at >= ?2) \
                 AND (?3 IS NULL OR {state} = ?3) AND (?5 = 0 OR severity = 'critical') \
                 ORDER BY last_notified_at DESC, fingerprint LIMIT ?6"
            ))?;
            let rows = stmt.query_map(
                params![q.service, q.since, q.state.map(|s| s.as_str()), q.now, q.critical_only as i64, q.limit as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, i64>(7)?,
                        r.get::<_, i64>(8)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (fingerprint, state, starts_at, ends_at, labels, annotations, generator_url, last, n) = row?;
                out.push(AlertState {
                    fingerprint,
                    state: status_from(&state),
                    labels: from_json(&labels)?,
                    annotations: from_json(&annotations)?,
                    starts_at,
                    ends_at,
                    generator_url,
                    last_notified_at: last,
                    notifications: n,
                });
            }
            Ok(out)
        })
    }

    pub fn history(&self, fingerprint: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT e.received_at, e.status, e.starts_at, e.ends_at, a.labels, e.annotations, e.generator_url, \
                 n.source, n.receiver, n.group_key FROM alert_events e JOIN notifications n ON n.id = e.notification_id \
                 JOIN alerts a ON a.fingerprint = e.fingerprint WHERE e.fingerprint = ?1 ORDER BY e.received_at, e.id",
            )?;
            let rows = stmt.query_map(params![fingerprint], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (received_at, status, starts_at, ends_at, labels, annotations, generator_url, source, receiver, gk) =
                    row?;
                out.push(HistoryEntry {
                    received_at,
                    status: status_from(&status),
                    starts_at,
                    ends_at,
                    labels: from_json(&labels)?,
                    annotations: from_json(&annotations)?,
                    generator_url,
                    source,
                    receiver,
                    group_key: gk,
                });
            }
            Ok(out)
        })
    }
}
