//! JSON-lines logging on stdout: one object per line with timestamp, level, message, target,
//! service and the event's fields; written by a lossy non-blocking writer that counts drops.

use std::fmt::{self, Write as _};

use std::sync::OnceLock;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};

use super::access_log::{ACCESS_TARGET, AccessLog};
use super::log_writer::{DropCounter, LogWriter};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The process's log writer, once [`init`] ran (one subscriber per process).
static WRITER: OnceLock<LogWriter> = OnceLock::new();

/// Gives access to the log's drop counter; dropping it writes out every queued line.
pub struct LogHandle {
    writer: LogWriter,
}

impl LogHandle {
    /// Lines dropped because stdout could not keep up (`redline_log_lines_dropped_total`).
    pub fn dropped_lines(&self) -> u64 {
        self.writer.drop_counter().dropped_lines()
    }

    pub fn counter(&self) -> DropCounter {
        self.writer.drop_counter()
    }

    /// The writer of `service`'s access lines, sharing this log's writer and drop counter.
    pub fn access_log(&self, service: &str) -> AccessLog {
        AccessLog::new(self.writer.clone(), service)
    }
}

impl Drop for LogHandle {
    fn drop(&mut self) {
        self.writer.flush(Duration::from_secs(2));
    }
}

/// Makes the calling thread batch its log lines (proxy workers: one hand-over per chunk
/// instead of per line); the thread must call [`flush_thread`] on a timer and before it ends.
pub fn batch_this_thread() {
    if let Some(w) = WRITER.get() {
        w.batch_this_thread();
    }
}

pub use super::log_writer::flush_thread;

/// Installs the global JSON subscriber. Access lines are always on; others follow `level`.
pub fn init(service: &str, level: &str) -> LogHandle {
    let writer = WRITER.get_or_init(|| LogWriter::start(std::io::stdout())).clone();
    let level: Level = level.parse().unwrap_or(Level::INFO);
    let filter = Targets::new().with_target(ACCESS_TARGET, Level::INFO).with_default(level);
    let layer = tracing_subscriber::fmt::layer()
        .event_format(JsonLine { service: service.to_string() })
        .with_writer(writer.clone());
    // A second init (tests start several sidecars in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layer.with_filter(filter)).try_init();
    LogHandle { writer }
}

use tracing_subscriber::Layer as _;

/// Formats an event as one JSON object.
pub struct JsonLine {
    pub service: String,
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        write_rfc3339_micros(&mut w, time::OffsetDateTime::now_utc())?;
        w.write_str("\",\"level\":\"")?;
        w.write_str(meta.level().as_str())?;
        w.write_str("\",\"target\":")?;
        write_json_str(&mut w, meta.target())?;
        w.write_str(",\"service\":")?;
        write_json_str(&mut w, &self.service)?;
        let mut fields = JsonFields { w: &mut w, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        w.write_str("}\n")
    }
}

struct JsonFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.w.write_char(',')?;
        write_json_str(self.w, field.name())?;
        self.w.write_char(':')
    }

    fn raw(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| self.w.write_str(value));
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| {
                self.w.write_char('"')?;
                write!(JsonEscaper(self.w), "{value:?}")?;
                self.w.write_char('"')
            });
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|_| write_json_str(self.w, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw(field, ryu::Buffer::new().format_finite(value));
        } else {
            self.record_str(
                field,
                if value.is_nan() {
                    "NaN"
                } else if value > 0.0 {
                    "+Inf"
                } else {
                    "-Inf"
                },
            );
        }
    }
}

/// Writes `s` as a JSON string literal; control characters are escaped so a line never breaks.
pub fn write_json_str(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    JsonEscaper(w).write_str(s)?;
    w.write_char('"')
}

struct JsonEscaper<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for JsonEscaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Scans bytes, not chars: everything to escape is ASCII except U+2028/U+2029 (E2 80 A8/A9).
        let bytes = s.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let escaped: Option<&str> = match b {
                b'"' => Some("\\\""),
                b'\\' => Some("\\\\"),
                b'\n' => Some("\\n"),
                b'\r' => Some("\\r"),
                b'\t' => Some("\\t"),
                0..=0x1f => None,
                0xe2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) => None,
                _ => {
                    i += 1;
                    continue;
                }
            };
            self.0.write_str(&s[start..i])?;
            match escaped {
                Some(e) => {
                    self.0.write_str(e)?;
                    i += 1;
                }
                None if b == 0xe2 => {
                    self.0.write_str(if bytes[i + 2] == 0xa8 { "\\u2028" } else { "\\u2029" })?;
                    i += 3;
                }
                None => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.0.write_str("\\u00")?;
                    self.0.write_char(HEX[(b >> 4) as usize] as char)?;
                    self.0.write_char(HEX[(b & 0xf) as usize] as char)?;
                    i += 1;
                }
            }
            start = i;
        }
        self.0.write_str(&s[start..])
    }
}

fn write_rfc3339_micros(w: &mut impl fmt::Write, t: time::OffsetDateTime) -> fmt::Result {
    write!(
        w,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_break_a_line() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\nd\u{1}e\u{2028}é").expect("write to String");
        assert_eq!(s, r#""a\"b\\c\nd\u0001e\u2028é""#);
        let parsed: String = serde_json::from_str(&s).expect("valid JSON string");
        assert_eq!(parsed, "a\"b\\c\nd\u{1}e\u{2028}é");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_micros() {
        let mut s = String::new();
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).expect("valid time");
        write_rfc3339_micros(&mut s, t).expect("write to String");
        assert_eq!(s, "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn events_become_one_json_object_with_the_contract_fields() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLine { service: "checkout".into() })
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "access", { http.response.status_code = 200u64, url.path = "/x\ny", error.type = Option::<&str>::None }, "request");
        });
        let out = String::from_utf8(sink.0.lock().expect("sink").clone()).expect("utf8");
        assert_eq!(out.lines().count(), 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "access");
        assert_eq!(v["service"], "checkout");
        assert_eq!(v["message"], "request");
        assert_eq!(v["http.response.status_code"], 200);
        assert_eq!(v["url.path"], "/x\ny");
        assert!(v.get("error.type").is_none());
        assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 27));
    }
}
