//! Parsing and validation of what senders post: Alertmanager webhook payloads (version 4) and
//! v2 API alert lists. Pure: bytes in, a validated `Delivery` (or an error naming the field) out.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How long a v2 alert without `endsAt` stays firing without a refresh, unless the receiver's
/// `--resolve-timeout` says otherwise: Alertmanager's default `resolve_timeout`, which it
/// applies the same way.
pub const RESOLVE_TIMEOUT_NANOS: i64 = 5 * 60 * 1_000_000_000;

// Serialised into the idempotency key, which covers parsed timestamps, so the "Z" and
// "+00:00" spellings of one instant agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

// By hand rather than derived: serde_json reads a derived enum from a number or a list as a
// JSON syntax error ("expected value"), where the sender needs to hear the field's values.
impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StatusVisitor;
        impl Visitor<'_> for StatusVisitor {
            type Value = Status;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"firing\" or \"resolved\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Status, E> {
                match s {
                    "firing" => Ok(Status::Firing),
                    "resolved" => Ok(Status::Resolved),
                    other => Err(E::unknown_variant(other, &["firing", "resolved"])),
                }
            }
        }
        d.deserialize_str(StatusVisitor)
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// Which API a delivery came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Webhook,
    ApiV2,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::ApiV2 => "api_v2",
        }
    }
}

/// One validated notification, ready to be stored in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// Hex SHA-256 of the notification's content (see [`dedup_key`]): a retried delivery has the same key.
    pub key: String,
    pub source: Source,
    pub receiver: String,
    /// The group status (webhook only).
    pub status: Option<Status>,
    pub group_key: String,
    pub external_url: String,
    pub truncated_alerts: u64,
    pub alerts: Vec<AlertRecord>,
}

/// One alert as a notification reported it. Timestamps are Unix nanoseconds; `None` is "unset".
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRecord {
    pub fingerprint: String,
    pub status: Status,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub generator_url: String,
    /// `startsAt` was not sent (v2): the store keeps the start of the instance already firing,
    /// as Alertmanager's merge keeps the earliest start.
    pub default_starts_at: bool,
    /// `endsAt` was not sent (v2) and is now + resolve timeout: every post of the alert moves
    /// it forward, even an exact repeat of an earlier post.
    pub default_ends_at: bool,
}

/// A payload that cannot be accepted; the message names the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookWire {
    // Checked while parsing (only "4" deserialises); nothing else to keep.
    #[allow(dead_code)]
    version: Version,
    group_key: String,
    #[serde(default)]
    truncated_alerts: u64,
    status: Status,
    receiver: String,
    // Present in every v4 payload but derived from the alerts, so not stored separately;
    // parsing them still checks their type.
    #[serde(default)]
    #[allow(dead_code)]
    group_labels: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    common_labels: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL", default)]
    external_url: String,
    alerts: Vec<Object<WebhookAlertWire>>,
}

/// What the webhook body must be, in Alertmanager's terms.
const WEBHOOK: &str = "an Alertmanager webhook JSON object (version \"4\")";
/// What the v2 API body must be.
const V2_ALERTS: &str = "a JSON array of alerts (Alertmanager API v2 PostableAlerts)";

/// A type's description in Alertmanager's terms, for messages.
trait Described {
    const WHAT: &'static str;
}

impl Described for WebhookAlertWire {
    const WHAT: &'static str = "an alert object (status, labels, annotations, startsAt, endsAt, ...)";
}

impl Described for PostableAlertWire {
    const WHAT: &'static str = "an alert object (labels, annotations, startsAt, endsAt, generatorURL)";
}

/// A JSON object read as `T`. serde's derive also builds a struct from an array of its
/// fields in order, which no sender means and whose errors name the Rust type; this takes
/// objects only and says what was expected in Alertmanager's terms.
#[derive(Serialize)]
#[serde(transparent)]
struct Object<T>(T);

impl<'de, T: Deserialize<'de> + Described> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Described> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(T::WHAT)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(ObjectVisitor(PhantomData)).map(Object)
    }
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlertWire {
    status: Status,
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(deserialize_with = "required_timestamp")]
    starts_at: Option<i64>,
    #[serde(default, deserialize_with = "timestamp")]
    ends_at: Option<i64>,
    #[serde(rename = "generatorURL", default)]
    generator_url: String,
    #[serde(default)]
    fingerprint: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlertWire {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "timestamp")]
    starts_at: Option<i64>,
    #[serde(default, deserialize_with = "timestamp")]
    ends_at: Option<i64>,
    #[serde(rename = "generatorURL", default)]
    generator_url: String,
}

/// The payload `version` field, which must be the string "4".
struct Version;

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = String::deserialize(d)?;
        if v == "4" { Ok(Version) } else { Err(de::Error::custom(format!("expected \"4\", got {v:?}"))) }
    }
}

/// Parses an Alertmanager webhook payload (version 4).
pub fn parse_webhook(body: &[u8]) -> Result<Delivery, PayloadError> {
    expect_top_level(body, b'{', WEBHOOK)?;
    let wire: WebhookWire = from_json(body)?;
    if wire.alerts.is_empty() {
        return Err(PayloadError("alerts: expected at least one alert, got an empty list".into()));
    }
    let mut alerts = Vec::with_capacity(wire.alerts.len());
    for (i, Object(a)) in wire.alerts.iter().enumerate() {
        validate_labels(&format!("alerts[{i}]"), &a.labels)?;
        let fingerprint = match &a.fingerprint {
            Some(f) if is_fingerprint(f) => f.clone(),
            Some(f) => {
                return Err(PayloadError(format!(
                    "alerts[{i}].fingerprint: expected 1 to 64 lowercase hexadecimal digits, got {f:?}"
                )));
            }
            None => fingerprint(&a.labels),
        };
        let starts_at = a
            .starts_at
            .ok_or_else(|| PayloadError(format!("alerts[{i}].startsAt: expected a timestamp, got the zero time")))?;
        if let Some(end) = a.ends_at
            && end < starts_at
        {
            return Err(PayloadError(format!("alerts[{i}].endsAt: is before startsAt")));
        }
        alerts.push(AlertRecord {
            fingerprint,
            status: a.status,
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at,
            ends_at: a.ends_at,
            generator_url: a.generator_url.clone(),
            default_starts_at: false,
            default_ends_at: false,
        });
    }
    let key = dedup_key(&(
        "webhook",
        &wire.receiver,
        wire.status,
        &wire.group_key,
        wire.truncated_alerts,
        sorted_by_fingerprint(&wire.alerts, &alerts),
    ));
    Ok(Delivery {
        key,
        source: Source::Webhook,
        receiver: wire.receiver,
        status: Some(wire.status),
        group_key: wire.group_key,
        external_url: wire.external_url,
        truncated_alerts: wire.truncated_alerts,
        alerts,
    })
}

/// Parses a v2 API alert list (`POST /api/v2/alerts`), filling defaults as Alertmanager does:
/// no `startsAt` means `endsAt` or now; no `endsAt` means firing until now + `resolve_timeout`
/// (nanoseconds; the receiver's `--resolve-timeout`, [`RESOLVE_TIMEOUT_NANOS`] by default).
pub fn parse_v2_alerts(body: &[u8], now: i64, resolve_timeout: i64) -> Result<Delivery, PayloadError> {
    expect_top_level(body, b'[', V2_ALERTS)?;
    let wire: Vec<Object<PostableAlertWire>> = from_json(body)?;
    let wire: Vec<PostableAlertWire> = wire.into_iter().map(|Object(a)| a).collect();
    if wire.is_empty() {
        return Err(PayloadError("[]: expected at least one alert, got an empty list".into()));
    }
    let mut alerts = Vec::with_capacity(wire.len());
    for (i, a) in wire.iter().enumerate() {
        validate_labels(&format!("[{i}]"), &a.labels)?;
        if let (Some(s), Some(e)) = (a.starts_at, a.ends_at)
            && e < s
        {
            return Err(PayloadError(format!("[{i}].endsAt: is before startsAt")));
        }
        let starts_at = a.starts_at.or(a.ends_at).unwrap_or(now);
        let ends_at = a.ends_at.unwrap_or(now.saturating_add(resolve_timeout));
        let status = if ends_at <= now { Status::Resolved } else { Status::Firing };
        alerts.push(AlertRecord {
            fingerprint: fingerprint(&a.labels),
            status,
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at,
            ends_at: Some(ends_at),
            generator_url: a.generator_url.clone(),
            default_starts_at: a.starts_at.is_none(),
            default_ends_at: a.ends_at.is_none(),
        });
    }
    // The key is taken from what was sent, before defaults that depend on the arrival time,
    // so a sender's retry of the same list is recognised.
    let mut keyed: Vec<(&str, &PostableAlertWire)> =
        alerts.iter().map(|a| a.fingerprint.as_str()).zip(wire.iter()).collect();
    keyed.sort_by(|x, y| x.0.cmp(y.0).then_with(|| x.1.starts_at.cmp(&y.1.starts_at)));
    let key = dedup_key(&("api_v2", keyed));
    Ok(Delivery {
        key,
        source: Source::ApiV2,
        receiver: String::new(),
        status: None,
        group_key: String::new(),
        external_url: String::new(),
        truncated_alerts: 0,
        alerts,
    })
}

fn sorted_by_fingerprint<'a>(
    wire: &'a [Object<WebhookAlertWire>],
    records: &'a [AlertRecord],
) -> Vec<(&'a str, &'a WebhookAlertWire)> {
    let mut v: Vec<_> = records.iter().map(|r| r.fingerprint.as_str()).zip(wire.iter().map(|o| &o.0)).collect();
    v.sort_by(|x, y| x.0.cmp(y.0).then_with(|| x.1.starts_at.cmp(&y.1.starts_at)));
    v
}

/// The idempotency key: SHA-256 over a canonical JSON rendering of the notification's content
/// (maps are sorted, alerts ordered by fingerprint). `externalURL` is left out so that the
/// copies of one notification sent by two Alertmanager replicas are stored once.
fn dedup_key(canonical: &impl Serialize) -> String {
    let bytes = serde_json::to_vec(canonical).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Refuses a body whose JSON value is not the kind `open` starts (`{` or `[`), saying what
/// the body must be; a body that is not JSON at all is left to the parser's message.
fn expect_top_level(body: &[u8], open: u8, what: &str) -> Result<(), PayloadError> {
    let Some(start) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(PayloadError(format!("body is empty; it must be {what}")));
    };
    let value = &body[start..];
    let found = match value[0] {
        b if b == open => return Ok(()),
        b'{' => "an object",
        b'[' => "an array",
        b'"' => "a string",
        b'-' | b'0'..=b'9' => "a number",
        _ if value.starts_with(b"true") || value.starts_with(b"false") => "a boolean",
        _ if value.starts_with(b"null") => "null",
        _ => return Ok(()),
    };
    Err(PayloadError(format!("body must be {what}, got {found}")))
}

/// serde's words for JSON's: a sequence is an array, a map an object.
fn json_words(message: &str) -> String {
    message
        .replace("invalid type: sequence", "invalid type: array")
        .replace("invalid type: map", "invalid type: object")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected an object")
}

fn from_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        match inner.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => PayloadError(format!("body is not valid JSON: {inner}")),
            serde_json::error::Category::Data => {
                let path = e.path().to_string();
                let message = json_words(&inner.to_string());
                if path == "." {
                    PayloadError(format!("body: {message}"))
                } else {
                    PayloadError(format!("{path}: {message}"))
                }
            }
        }
    })?;
    de.end().map_err(|e| PayloadError(format!("body is not valid JSON: {e}")))?;
    Ok(value)
}

fn validate_labels(at: &str, labels: &BTreeMap<String, String>) -> Result<(), PayloadError> {
    if labels.is_empty() {
        return Err(PayloadError(format!("{at}.labels: expected at least one label")));
    }
    for name in labels.keys() {
        if !is_label_name(name) {
            return Err(PayloadError(format!(
                "{at}.labels: invalid label name {name:?} (expected [a-zA-Z_][a-zA-Z0-9_]*)"
            )));
        }
    }
    Ok(())
}

fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_fingerprint(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Alertmanager's alert fingerprint (Prometheus `model.LabelSet.Fingerprint`): 64-bit FNV-1a
/// over the label names in sorted order, each name and value followed by the byte 0xff,
/// printed as 16 lowercase hex digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    format!("{h:016x}")
}

/// Unix nanoseconds of an RFC 3339 timestamp; `None` for Go's zero time (year 1), which
/// Alertmanager sends as the `endsAt` of firing alerts.
pub fn parse_timestamp(s: &str) -> Result<Option<i64>, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| format!("expected an RFC 3339 timestamp, got {s:?}"))?;
    if t.year() <= 1 {
        return Ok(None);
    }
    i64::try_from(t.unix_timestamp_nanos())
        .map(Some)
        .map_err(|_| format!("timestamp {s:?} is outside the years 1678 to 2262"))
}

/// RFC 3339 in UTC with only as many fraction digits as needed.
pub fn format_timestamp(nanos: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

pub fn now_nanos() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_option(TimestampVisitor)
}

fn required_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_str(TimestampVisitor)
}

struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 timestamp")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        parse_timestamp(s).map_err(E::custom)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(TimestampVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    pub(crate) fn webhook(alerts: &str) -> String {
        format!(
            r#"{{"version":"4","groupKey":"{{}}:{{alertname=\"X\"}}","truncatedAlerts":0,"status":"firing",
            "receiver":"redline","groupLabels":{{"alertname":"X"}},"commonLabels":{{}},"commonAnnotations":{{}},
            "externalURL":"http://am:9093","alerts":[{alerts}]}}"#
        )
    }

    const ALERT: &str = r#"{"status":"firing","labels":{"alertname":"X","service":"checkout"},"annotations":{"summary":"s"},
        "startsAt":"2024-05-01T10:00:00.123456789+02:00","endsAt":"0001-01-01T00:00:00Z",
        "generatorURL":"http://prom/graph","fingerprint":"0123456789abcdef"}"#;

    #[test]
    fn fingerprint_matches_alertmanager() {
        // Values computed by Alertmanager 0.25 (GET /api/v2/alerts) for these label sets; the
        // integration test also compares against a running Alertmanager.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        let a = fingerprint(&labels(&[("alertname", "X")]));
        let b = fingerprint(&labels(&[("alertname", "X"), ("service", "checkout")]));
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn parses_a_version_4_payload() {
        let d = parse_webhook(webhook(ALERT).as_bytes()).expect("valid payload");
        assert_eq!(d.receiver, "redline");
        assert_eq!(d.status, Some(Status::Firing));
        assert_eq!(d.alerts.len(), 1);
        let a = &d.alerts[0];
        assert_eq!(a.fingerprint, "0123456789abcdef");
        assert_eq!(a.ends_at, None);
        assert_eq!(format_timestamp(a.starts_at), "2024-05-01T08:00:00.123456789Z");
        assert_eq!(d.key.len(), 64);
    }

    #[test]
    fn the_key_ignores_external_url_and_alert_order_but_not_content() {
        let two =
            format!("{ALERT},{}", ALERT.replace("checkout", "cart").replace("0123456789abcdef", "00000000000000ff"));
        let swapped =
            format!("{},{ALERT}", ALERT.replace("checkout", "cart").replace("0123456789abcdef", "00000000000000ff"));
        let a = parse_webhook(webhook(&two).as_bytes()).expect("valid");
        let b =
            parse_webhook(webhook(&swapped).replace("http://am:9093", "http://am-2:9093").as_bytes()).expect("valid");
        assert_eq!(a.key, b.key);
        let c = parse_webhook(
            webhook(&two)
                .replace(
                    "\"firing\",\"labels\":{\"alertname\":\"X\",\"service\":\"cart\"",
                    "\"resolved\",\"labels\":{\"alertname\":\"X\",\"service\":\"cart\"",
                )
                .as_bytes(),
        )
        .expect("valid");
        assert_ne!(a.key, c.key);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(String, &str)] = &[
            ("not json".into(), "body is not valid JSON"),
            (webhook(ALERT).replace("\"version\":\"4\"", "\"version\":\"3\""), "version: expected \"4\", got \"3\""),
            (webhook(ALERT).replace("\"receiver\":\"redline\",", ""), "missing field `receiver`"),
            (
                webhook(ALERT).replace("2024-05-01T10:00:00.123456789+02:00", "yesterday"),
                "alerts[0].startsAt: expected an RFC 3339 timestamp",
            ),
            (
                webhook(ALERT).replace("\"status\":\"firing\",\"labels\"", "\"status\":\"on\",\"labels\""),
                "alerts[0].status: unknown variant `on`",
            ),
            (
                webhook(ALERT).replace("\"summary\":\"s\"", "\"summary\":1"),
                "alerts[0].annotations.summary: invalid type: integer `1`, expected a string",
            ),
            (
                webhook(ALERT).replace("\"truncatedAlerts\":0", "\"truncatedAlerts\":\"0\""),
                "truncatedAlerts: invalid type: string",
            ),
            (webhook(""), "alerts: expected at least one alert"),
            (
                webhook(ALERT).replace("\"alertname\":\"X\",\"service\"", "\"1x\":\"X\",\"service\""),
                "alerts[0].labels: invalid label name \"1x\"",
            ),
            (
                webhook(ALERT).replace("0123456789abcdef", "XYZ"),
                "alerts[0].fingerprint: expected 1 to 64 lowercase hexadecimal digits",
            ),
            (
                webhook(ALERT).replace("\"startsAt\":\"2024-05-01T10:00:00.123456789+02:00\",", ""),
                "alerts[0]: missing field `startsAt`",
            ),
            (format!("{} x", webhook(ALERT)), "body is not valid JSON: trailing characters"),
            ("[]".into(), "body must be an Alertmanager webhook JSON object (version \"4\"), got an array"),
            (" \"4\"".into(), "body must be an Alertmanager webhook JSON object (version \"4\"), got a string"),
            ("null".into(), "got null"),
            ("".into(), "body is empty; it must be an Alertmanager webhook JSON object"),
            (webhook("[]"), "alerts[0]: invalid type: array, expected an alert object (status, labels,"),
            (webhook("\"x\""), "alerts[0]: invalid type: string \"x\", expected an alert object"),
            (
                webhook(ALERT).replace("\"alerts\":[", "\"alerts\":{\"a\":").replace("}]}", "}}}"),
                "alerts: invalid type: object, expected an array",
            ),
            (
                webhook(ALERT)
                    .replace("\"truncatedAlerts\":0,\"status\":\"firing\"", "\"truncatedAlerts\":0,\"status\":1"),
                "status: invalid type: integer `1`, expected \"firing\" or \"resolved\"",
            ),
            (
                webhook(ALERT).replace("\"groupLabels\":{\"alertname\":\"X\"}", "\"groupLabels\":[]"),
                "groupLabels: invalid type: array, expected an object",
            ),
            (
                webhook(ALERT).replace("\"receiver\":\"redline\"", "\"receiver\":null"),
                "receiver: invalid type: null, expected a string",
            ),
        ];
        for (body, want) in cases {
            let err = parse_webhook(body.as_bytes()).expect_err(want).0;
            assert!(err.contains(want), "{body}\n got: {err}\nwant: {want}");
            for rust in ["Wire", "struct", "elements", "sequence", "a map"] {
                assert!(!err.contains(rust), "{body}\n got: {err}");
            }
        }
    }

    #[test]
    fn v2_alerts_get_alertmanager_defaults() {
        let now = 1_700_000_000_000_000_000;
        let body = r#"[{"labels":{"alertname":"A"}},{"labels":{"alertname":"B"},"startsAt":"2023-11-14T22:00:00Z","endsAt":"2023-11-14T22:10:00Z"}]"#;
        let d = parse_v2_alerts(body.as_bytes(), now, RESOLVE_TIMEOUT_NANOS).expect("valid");
        assert_eq!(d.alerts[0].starts_at, now);
        assert_eq!(d.alerts[0].ends_at, Some(now + RESOLVE_TIMEOUT_NANOS));
        assert!(d.alerts[0].default_starts_at && d.alerts[0].default_ends_at);
        assert!(!d.alerts[1].default_starts_at && !d.alerts[1].default_ends_at);
        let short = parse_v2_alerts(body.as_bytes(), now, 2_000_000_000).expect("valid");
        assert_eq!(short.alerts[0].ends_at, Some(now + 2_000_000_000), "--resolve-timeout");
        assert_eq!(d.alerts[0].status, Status::Firing);
        assert_eq!(d.alerts[1].status, Status::Resolved);
        assert_eq!(d.alerts[0].fingerprint, fingerprint(&labels(&[("alertname", "A")])));
        // A retry later still has the same key.
        assert_eq!(
            d.key,
            parse_v2_alerts(body.as_bytes(), now + 1_000_000_000, RESOLVE_TIMEOUT_NANOS).expect("valid").key
        );
        let err = parse_v2_alerts(br#"[{"labels":{}}]"#, now, RESOLVE_TIMEOUT_NANOS).expect_err("no labels").0;
        assert_eq!(err, "[0].labels: expected at least one label");
        let err = parse_v2_alerts(br#"[{"labels":{"a":"b"},"startsAt":5}]"#, now, RESOLVE_TIMEOUT_NANOS)
            .expect_err("number")
            .0;
        assert!(err.starts_with("[0].startsAt: invalid type: integer `5`, expected an RFC 3339 timestamp"), "{err}");
        let err = parse_v2_alerts(br#"{"labels":{"a":"b"}}"#, now, RESOLVE_TIMEOUT_NANOS).expect_err("object").0;
        assert_eq!(err, "body must be a JSON array of alerts (Alertmanager API v2 PostableAlerts), got an object");
        let err = parse_v2_alerts(br#"[["a"]]"#, now, RESOLVE_TIMEOUT_NANOS).expect_err("array").0;
        assert!(err.starts_with("[0]: invalid type: array, expected an alert object (labels,"), "{err}");
    }

    #[test]
    fn arbitrary_bytes_and_mutations_never_panic() {
        // A stable complement to the cargo-fuzz target in fuzz/: random bytes, and the valid
        // payload with random bytes flipped, inserted and truncated.
        let valid = webhook(ALERT).into_bytes();
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..20_000 {
            let mut b = valid.clone();
            for _ in 0..rng.usize(1..4) {
                match rng.u8(0..3) {
                    0 if !b.is_empty() => {
                        let i = rng.usize(..b.len());
                        b[i] = rng.u8(..);
                    }
                    1 => b.insert(rng.usize(..=b.len()), rng.u8(..)),
                    _ => b.truncate(rng.usize(..=b.len())),
                }
            }
            let _ = parse_webhook(&b);
            let _ = parse_v2_alerts(&b, 0, RESOLVE_TIMEOUT_NANOS);
            let noise: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
            let _ = parse_webhook(&noise);
        }
    }
}
