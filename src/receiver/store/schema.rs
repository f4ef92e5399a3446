//! The schema and statements, one list of migrations per SQL dialect (applied in order at start-up).
//! Timestamps are Unix nanoseconds (BIGINT); label sets are JSON text with sorted keys.

/// Migrations for SQLite; the index in the list + 1 is the schema version. `alerts` is keyed
/// by fingerprint alone (WITHOUT ROWID): one B-tree page per upsert instead of an index page
/// plus a table page, which halves the pages a commit writes to the WAL.
pub const SQLITE_MIGRATIONS: &[&str] = &["
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    dedup_key TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    receiver TEXT NOT NULL,
    status TEXT,
    group_key TEXT NOT NULL,
    external_url TEXT NOT NULL,
    truncated_alerts BIGINT NOT NULL,
    alert_count INTEGER NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT,
    annotations TEXT NOT NULL,
    generator_url TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX alert_events_by_fingerprint ON alert_events (fingerprint, received_at);
CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    generator_url TEXT NOT NULL,
    service TEXT,
    namespace TEXT,
    version TEXT,
    severity TEXT,
    source TEXT NOT NULL,
    last_notified_at BIGINT NOT NULL,
    notifications BIGINT NOT NULL
) WITHOUT ROWID;
CREATE INDEX alerts_by_service ON alerts (service);
"];

/// Migrations for PostgreSQL, version for version the same schema as SQLite's.
pub const POSTGRES_MIGRATIONS: &[&str] = &["
CREATE TABLE notifications (
    id BIGSERIAL PRIMARY KEY,
    dedup_key TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    receiver TEXT NOT NULL,
    status TEXT,
    group_key TEXT NOT NULL,
    external_url TEXT NOT NULL,
    truncated_alerts BIGINT NOT NULL,
    alert_count INTEGER NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE TABLE alert_events (
    id BIGSERIAL PRIMARY KEY,
    notification_id BIGINT NOT NULL REFERENCES notifications (id),
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT,
    annotations TEXT NOT NULL,
    generator_url TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX alert_events_by_fingerprint ON alert_events (fingerprint, received_at);
CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    generator_url TEXT NOT NULL,
    service TEXT,
    namespace TEXT,
    version TEXT,
    severity TEXT,
    source TEXT NOT NULL,
    last_notified_at BIGINT NOT NULL,
    notifications BIGINT NOT NULL
);
CREATE INDEX alerts_by_service ON alerts (service);
"];

pub const CREATE_MIGRATIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)";

/// The `ON CONFLICT` clause that folds a notification into an alert's current state.
///
/// A notification about an older instance of the alert (smaller `startsAt`, e.g. a late retry)
/// never overwrites a newer one; otherwise the latest notification wins. `last_notified_at`
/// only moves forward and `notifications` counts every stored notification.
pub fn alert_upsert_clause(greatest: &str) -> String {
    let newer = "excluded.starts_at >= alerts.starts_at";
    // Labels (and the columns taken from them) are the alert's identity: the fingerprint is
    // their hash, so they are written once and never rewritten (no index churn on updates).
    let cols = ["status", "ends_at", "annotations", "generator_url", "source"];
    let mut set: Vec<String> =
        cols.iter().map(|c| format!("{c} = CASE WHEN {newer} THEN excluded.{c} ELSE alerts.{c} END")).collect();
    set.push(format!("starts_at = {greatest}(alerts.starts_at, excluded.starts_at)"));
    set.push(format!("last_notified_at = {greatest}(alerts.last_notified_at, excluded.last_notified_at)"));
    set.push("notifications = alerts.notifications + 1".into());
    format!("ON CONFLICT (fingerprint) DO UPDATE SET {}", set.join(", "))
}

/// The column list of `alerts` in insert order.
pub const ALERT_COLUMNS: &str = "fingerprint, status, starts_at, ends_at, labels, annotations, generator_url, \
     service, namespace, version, severity, source, last_notified_at, notifications";

pub const NOTIFICATION_COLUMNS: &str =
    "dedup_key, source, receiver, status, group_key, external_url, truncated_alerts, alert_count, received_at";

/// An event has no labels of its own: they are the alert's (its fingerprint is their hash).
pub const EVENT_COLUMNS: &str =
    "notification_id, fingerprint, status, starts_at, ends_at, annotations, generator_url, received_at";

/// The state an alert is in at `now`: firing only while its last notification said firing
/// and its `endsAt` (if any) is still ahead — a v2 sender that stops refreshing resolves it.
pub const STATE_EXPR: &str = "CASE WHEN status = 'firing' AND (ends_at IS NULL OR ends_at > {now}) \
     THEN 'firing' ELSE 'resolved' END";
