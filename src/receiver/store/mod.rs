//! Durable storage of notifications and current alert state, in SQLite or PostgreSQL.
//! Deliveries are queued to one writer that commits each batch in one transaction (group commit).

mod postgres;
mod refresh;
mod schema;
mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::metrics::ReceiverMetrics;
use super::payload::{Delivery, Status};

/// Most deliveries committed in one transaction; bounds the latency one commit adds.
const MAX_BATCH: usize = 512;
/// Deliveries waiting for the writer; senders wait (backpressure) once it is full.
const QUEUE: usize = 4096;

/// What happened to a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Newly committed.
    Stored,
    /// The same notification was committed before: nothing changed.
    Duplicate,
    /// A v2 post that only moved the `endsAt` of alerts already firing: their state (and the
    /// latest event of each) changed, the history gained no event.
    Refreshed,
}

impl Outcome {
    /// A v2 delivery's outcome from what its alerts did.
    fn of_merges(merges: &[refresh::Merge]) -> Outcome {
        use refresh::Merge;
        if merges.iter().any(|m| matches!(m, Merge::Event { .. })) {
            Outcome::Stored
        } else if merges.iter().any(|m| matches!(m, Merge::Refresh { .. })) {
            Outcome::Refreshed
        } else {
            Outcome::Duplicate
        }
    }
}

/// The store could not be reached or refused a write.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(format!("SQLite: {e}"))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError(postgres_message(&e))
    }
}

/// A PostgreSQL error as one line: the server's own report (severity, SQLSTATE code, message,
/// detail and hint) when it sent one, else the client's error with its causes. The driver's
/// `Display` says only "db error" for the former and drops the cause of the latter.
pub fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("PostgreSQL {} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" (detail: {detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            text
        }
        None => format!("PostgreSQL: {}", crate::errors::with_causes(e)),
    }
}

/// The current state of one alert, as the query API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertState {
    pub fingerprint: String,
    /// Firing only while the last notification said firing and its `endsAt` has not passed.
    pub state: Status,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub generator_url: String,
    pub last_notified_at: i64,
    pub notifications: i64,
}

/// One stored notification of one alert.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    pub received_at: i64,
    pub status: Status,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub generator_url: String,
    pub source: String,
    pub receiver: String,
    pub group_key: String,
}

/// Filters of `GET /api/v1/alerts` (and of the gates).
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    pub service: Option<String>,
    pub state: Option<Status>,
    /// Only alerts notified at or after this time (Unix nanoseconds).
    pub since: Option<i64>,
    pub critical_only: bool,
    pub limit: usize,
    /// The time against which `endsAt` is judged.
    pub now: i64,
}

struct Job {
    delivery: Delivery,
    received_at: i64,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

enum Reader {
    Sqlite(Arc<sqlite::Readers>),
    Postgres(Arc<postgres::Readers>),
}

/// A handle to the store; cheap to share behind an `Arc`.
pub struct Store {
    queue: mpsc::Sender<Job>,
    reader: Reader,
    kind: &'static str,
}

impl Store {
    /// Opens (creating and migrating) the store named by `--db`: a PostgreSQL URL, or a SQLite file path.
    pub async fn open(db: &str, metrics: Arc<ReceiverMetrics>) -> Result<Store, StoreError> {
        let (queue, rx) = mpsc::channel(QUEUE);
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            let config: tokio_postgres::Config = db.parse().map_err(|e| StoreError(postgres_message(&e)))?;
            let readers = postgres::open(config, rx, metrics).await?;
            Ok(Store { queue, reader: Reader::Postgres(readers), kind: "postgres" })
        } else {
            let path = db.strip_prefix("sqlite://").unwrap_or(db).to_string();
            let readers = tokio::task::spawn_blocking(move || sqlite::open(&path, rx, metrics))
                .await
                .map_err(|e| StoreError(format!("sqlite open task: {e}")))??;
            Ok(Store { queue, reader: Reader::Sqlite(readers), kind: "sqlite" })
        }
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Stores a delivery; returns only once it is durably committed (or known to be a duplicate).
    pub async fn commit(&self, delivery: Delivery, received_at: i64) -> Result<Outcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Job { delivery, received_at, reply })
            .await
            .map_err(|_| StoreError("the store writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError("the store writer stopped before committing".into()))?
    }

    pub async fn alerts(&self, q: AlertQuery) -> Result<Vec<AlertState>, StoreError> {
        match &self.reader {
            Reader::Sqlite(r) => {
                let r = r.clone();
                blocking(move || r.alerts(&q)).await
            }
            Reader::Postgres(r) => r.alerts(&q).await,
        }
    }

    /// Every stored notification of the alert, oldest first (empty if unknown).
    pub async fn history(&self, fingerprint: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        match &self.reader {
            Reader::Sqlite(r) => {
                let r = r.clone();
                let fp = fingerprint.to_string();
                blocking(move || r.history(&fp)).await
            }
            Reader::Postgres(r) => r.history(fingerprint).await,
        }
    }

    /// Whether the store answers a trivial query (and the writer is running).
    pub async fn ping(&self) -> Result<(), StoreError> {
        if self.queue.is_closed() {
            return Err(StoreError("the store writer has stopped".into()));
        }
        let check = async {
            match &self.reader {
                Reader::Sqlite(r) => {
                    let r = r.clone();
                    blocking(move || r.ping()).await
                }
                Reader::Postgres(r) => r.ping().await,
            }
        };
        tokio::time::timeout(Duration::from_secs(2), check)
            .await
            .map_err(|_| StoreError("the store did not answer within 2s".into()))?
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError(format!("store task: {e}")))?
}

/// Takes the next batch: waits for one job, then takes whatever else is already queued.
fn take_batch(first: Job, rx: &mut mpsc::Receiver<Job>) -> Vec<Job> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}

/// Answers every job of a committed batch and records the commit.
fn finish_batch(batch: Vec<Job>, result: Vec<Outcome>, started: Instant, metrics: &ReceiverMetrics) {
    metrics.observe_commit(started.elapsed().as_secs_f64());
    for (job, outcome) in batch.into_iter().zip(result) {
        let _ = job.reply.send(Ok(outcome));
    }
}

/// The fields of a record the store indexes, taken from its labels.
struct Indexed<'a> {
    service: Option<&'a str>,
    namespace: Option<&'a str>,
    version: Option<&'a str>,
    severity: Option<&'a str>,
}

fn indexed(labels: &BTreeMap<String, String>) -> Indexed<'_> {
    Indexed {
        service: labels.get("service").map(String::as_str),
        namespace: labels.get("namespace").map(String::as_str),
        version: labels.get("version").map(String::as_str),
        severity: labels.get("severity").map(String::as_str),
    }
}

fn to_json(m: &BTreeMap<String, String>) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".into())
}

fn from_json(s: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError(format!("stored label set is not valid JSON: {e}")))
}

fn status_from(s: &str) -> Status {
    if s == "resolved" { Status::Resolved } else { Status::Firing }
}
