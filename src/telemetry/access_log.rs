//! The per-request access line: the JSON object the README's log reference defines, formatted straight
//! into the worker's log batch (no tracing event, no intermediate string) on the hot path.

use super::out::{Out, in_room};
use super::propagation::hex_into;
use super::wall_clock::UnixNanos;
use std::cell::RefCell;

use super::log_writer::LogWriter;

/// The `target` of per-request access lines.
pub const ACCESS_TARGET: &str = "access";

/// One finished request, as the access line reports it.
pub struct AccessLine<'a> {
    pub method: &'a http::Method,
    /// The path without the query string; None when the request head could not be read.
    pub path: Option<&'a str>,
    pub route: &'a str,
    /// 0 when no response was sent.
    pub status: u16,
    pub duration_micros: u64,
    pub response_body_size: u64,
    pub request_body_size: u64,
    pub client_address: &'a [u8],
    pub user_agent: Option<&'a [u8]>,
    pub trace_id: &'a [u8; 16],
    pub span_id: &'a [u8; 8],
    pub error_type: Option<&'a str>,
    /// For a gRPC call: its service, method and status.
    pub rpc: Option<RpcFields<'a>>,
}

/// What the access line of a gRPC call adds (OpenTelemetry RPC attribute names).
pub struct RpcFields<'a> {
    /// `package.Service`, None when the path is not `/package.Service/Method`.
    pub service: Option<&'a str>,
    /// `package.Service/Method`, as `rpc.method` is since semantic conventions v1.45.0.
    pub method: Option<&'a str>,
    pub status_code: &'a str,
}

/// Where access lines go: the process's log writer and the service name every line carries.
pub struct AccessLog {
    writer: LogWriter,
    /// `,"target":"access","service":"…","message":"request"` with the service escaped once.
    fixed: Vec<u8>,
}

impl AccessLog {
    pub fn new(writer: LogWriter, service: &str) -> Self {
        let mut fixed = Vec::with_capacity(64 + service.len());
        fixed.extend_from_slice(b",\"target\":");
        escape_json(&mut fixed, ACCESS_TARGET.as_bytes());
        fixed.extend_from_slice(b",\"service\":");
        escape_json(&mut fixed, service.as_bytes());
        fixed.extend_from_slice(b",\"message\":\"request\"");
        AccessLog { writer, fixed }
    }

    /// Writes `line`, stamped `at` (when the request ended).
    pub fn write(&self, line: &AccessLine<'_>, at: UnixNanos) {
        self.writer.write_line(|out| self.format(out, line, at));
    }

    fn format(&self, out: &mut Vec<u8>, l: &AccessLine<'_>, now: UnixNanos) {
        in_room(out, self.most_bytes(l), |c| self.put(c, l, now), |v| self.put(v, l, now));
    }

    /// The most bytes `put` writes for `l`: the keys, numbers and timestamp fit in 512 with
    /// the service's part, and text from the request takes at most six bytes per byte (a
    /// control byte becomes `\u00XX`, an invalid one three bytes of U+FFFD).
    fn most_bytes(&self, l: &AccessLine<'_>) -> usize {
        let rpc = l
            .rpc
            .as_ref()
            .map_or(0, |r| r.service.map_or(0, str::len) + r.method.map_or(0, str::len) + r.status_code.len());
        let text = l.path.map_or(0, str::len)
            + l.route.len()
            + l.client_address.len()
            + l.user_agent.map_or(0, <[u8]>::len)
            + l.error_type.map_or(0, str::len)
            + rpc;
        512 + self.fixed.len() + l.method.as_str().len() + 6 * text
    }

    fn put(&self, out: &mut impl Out, l: &AccessLine<'_>, now: UnixNanos) {
        out.bytes(b"{\"timestamp\":\"");
        write_timestamp(out, now);
        out.bytes(b"\",\"level\":\"INFO\"");
        out.bytes(&self.fixed);
        let mut num = itoa::Buffer::new();
        // A method is an RFC 9110 token (`http::Method` holds no other): no byte of it needs
        // escaping in JSON.
        out.bytes(b",\"http.request.method\":\"");
        out.bytes(l.method.as_str().as_bytes());
        out.byte(b'"');
        if let Some(path) = l.path {
            out.bytes(b",\"url.path\":");
            escape_json(out, path.as_bytes());
        }
        out.bytes(b",\"http.route\":");
        escape_json(out, l.route.as_bytes());
        // No response, no status: the field is left out, as OpenTelemetry leaves the attribute.
        if l.status != 0 {
            out.bytes(b",\"http.response.status_code\":");
            out.bytes(num.format(l.status).as_bytes());
        }
        out.bytes(b",\"duration_ms\":");
        write_millis(out, l.duration_micros);
        out.bytes(b",\"http.response.body.size\":");
        out.bytes(num.format(l.response_body_size).as_bytes());
        out.bytes(b",\"http.request.body.size\":");
        out.bytes(num.format(l.request_body_size).as_bytes());
        out.bytes(b",\"client.address\":");
        escape_json(out, l.client_address);
        if let Some(ua) = l.user_agent {
            out.bytes(b",\"user_agent.original\":");
            escape_json(out, ua);
        }
        out.bytes(b",\"trace_id\":\"");
        write_hex(out, l.trace_id);
        out.bytes(b"\",\"span_id\":\"");
        write_hex(out, l.span_id);
        out.byte(b'"');
        if let Some(e) = l.error_type {
            out.bytes(b",\"error.type\":");
            escape_json(out, e.as_bytes());
        }
        if let Some(rpc) = &l.rpc {
            out.bytes(b",\"rpc.system.name\":\"grpc\"");
            if let Some(service) = rpc.service {
                out.bytes(b",\"rpc.service\":");
                escape_json(out, service.as_bytes());
            }
            if let Some(method) = rpc.method {
                out.bytes(b",\"rpc.method\":");
                escape_json(out, method.as_bytes());
            }
            out.bytes(b",\"rpc.response.status_code\":");
            escape_json(out, rpc.status_code.as_bytes());
        }
        out.bytes(b"}\n");
    }
}

/// Milliseconds with microsecond precision, as a JSON number (`12.345`, `0.07`, `3.0`).
fn write_millis(out: &mut impl Out, micros: u64) {
    out.bytes(itoa::Buffer::new().format(micros / 1000).as_bytes());
    out.byte(b'.');
    let frac = micros % 1000;
    let digits = [b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8];
    let keep = if digits[2] != b'0' {
        3
    } else if digits[1] != b'0' {
        2
    } else {
        1
    };
    out.bytes(&digits[..keep]);
}

/// A trace or span id (16 bytes at most) in lower-case hex.
fn write_hex(out: &mut impl Out, bytes: &[u8]) {
    let mut digits = [0u8; 32];
    let n = 2 * bytes.len().min(16);
    hex_into(bytes, &mut digits[..n]);
    out.bytes(&digits[..n]);
}

thread_local! {
    /// The formatted `YYYY-MM-DDTHH:MM:SS.` of the last second this thread logged in.
    static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
}

/// RFC 3339 UTC with microseconds; the date and time of day are formatted once per second.
fn write_timestamp(out: &mut impl Out, now: UnixNanos) {
    let secs = now.secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let t = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let mut s = [0u8; 20];
            let mut put = |at: usize, v: u32, width: usize| {
                let mut v = v;
                for i in (0..width).rev() {
                    s[at + i] = b'0' + (v % 10) as u8;
                    v /= 10;
                }
            };
            put(0, t.year().clamp(0, 9999) as u32, 4);
            put(5, t.month() as u32, 2);
            put(8, u32::from(t.day()), 2);
            put(11, u32::from(t.hour()), 2);
            put(14, u32::from(t.minute()), 2);
            put(17, u32::from(t.second()), 2);
            s[4] = b'-';
            s[7] = b'-';
            s[10] = b'T';
            s[13] = b':';
            s[16] = b':';
            s[19] = b'.';
            *cached = (secs, s);
        }
        out.bytes(&cached.1);
    });
    let micros = now.subsec_nanos() / 1000;
    let mut digits = [b'0'; 6];
    let mut v = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.bytes(&digits);
    out.byte(b'Z');
}

/// Writes `bytes` as a JSON string literal. Control characters, quotes, backslashes and
/// U+2028/U+2029 are escaped so a line never breaks; bytes that are not UTF-8 (a header may
/// carry any octet) become U+FFFD, as `String::from_utf8_lossy` would.
pub fn escape_json(out: &mut impl Out, bytes: &[u8]) {
    out.byte(b'"');
    // is_ascii, a word at a time, settles the usual field for a fraction of from_utf8.
    if bytes.is_ascii() {
        escape_utf8(out, bytes);
    } else {
        match std::str::from_utf8(bytes) {
            Ok(s) => escape_utf8(out, s.as_bytes()),
            Err(_) => escape_utf8(out, String::from_utf8_lossy(bytes).as_bytes()),
        }
    }
    out.byte(b'"');
}

/// The bytes `escape_utf8` looks at twice: those JSON string content cannot hold as they are
/// (controls, `"`, `\`) and 0xE2, the first byte of U+2028 and U+2029. One table load per byte
/// instead of four comparisons.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0xe2] = true;
    t
};

/// Escapes `bytes`, which are UTF-8 (checked by the caller), as JSON string content.
fn escape_utf8(out: &mut impl Out, bytes: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !SPECIAL[usize::from(b)] {
            i += 1;
            continue;
        }
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0xe2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) => {
                if bytes[i + 2] == 0xa8 { b"\\u2028" } else { b"\\u2029" }
            }
            0xe2 => {
                i += 1;
                continue;
            }
            _ => {
                out.bytes(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.bytes(b"\\u00");
                out.byte(HEX[(b >> 4) as usize]);
                out.byte(HEX[(b & 0xf) as usize]);
                i += 1;
                start = i;
                continue;
            }
        };
        out.bytes(&bytes[start..i]);
        out.bytes(escaped);
        i += if b == 0xe2 { 3 } else { 1 };
        start = i;
    }
    out.bytes(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(ua: Option<&'a [u8]>, error: Option<&'a str>) -> AccessLine<'a> {
        AccessLine {
            method: &http::Method::GET,
            path: Some("/users/7"),
            route: "/users/{id}",
            status: 503,
            duration_micros: 12_340,
            response_body_size: 42,
            request_body_size: 0,
            client_address: b"10.0.0.9",
            user_agent: ua,
            trace_id: &[0xab; 16],
            span_id: &[0x01; 8],
            error_type: error,
            rpc: None,
        }
    }

    fn formatted(log: &AccessLog, l: &AccessLine<'_>, at: UnixNanos) -> String {
        let mut out = Vec::new();
        log.format(&mut out, l, at);
        String::from_utf8(out).expect("access lines are UTF-8")
    }

    fn log(service: &str) -> AccessLog {
        AccessLog::new(LogWriter::start(std::io::sink()), service)
    }

    #[test]
    fn an_access_line_is_one_json_object_with_the_contract_fields() {
        let at = UnixNanos(1_700_000_000_123_456_789);
        let text = formatted(&log("check\"out"), &line(Some(b"curl/8"), Some("503")), at);
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("one JSON object");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "access");
        assert_eq!(v["service"], "check\"out");
        assert_eq!(v["message"], "request");
        assert_eq!(v["http.request.method"], "GET");
        assert_eq!(v["url.path"], "/users/7");
        assert_eq!(v["http.route"], "/users/{id}");
        assert_eq!(v["http.response.status_code"], 503);
        assert_eq!(v["duration_ms"], 12.34);
        assert_eq!(v["http.response.body.size"], 42);
        assert_eq!(v["http.request.body.size"], 0);
        assert_eq!(v["client.address"], "10.0.0.9");
        assert_eq!(v["user_agent.original"], "curl/8");
        assert_eq!(v["trace_id"], "abababababababababababababababab");
        assert_eq!(v["span_id"], "0101010101010101");
        assert_eq!(v["error.type"], "503");
    }

    #[test]
    fn optional_fields_are_left_out() {
        let text = formatted(&log("s"), &line(None, None), UnixNanos::now());
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("one JSON object");
        assert!(v.get("user_agent.original").is_none() && v.get("error.type").is_none(), "{text}");
    }

    #[test]
    fn an_extension_method_is_written_as_sent() {
        let purge = http::Method::from_bytes(b"PURGE!#$%&'*+-.^_`|~9").expect("a token");
        let mut l = line(None, None);
        l.method = &purge;
        let text = formatted(&log("s"), &l, UnixNanos::now());
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("one JSON object");
        assert_eq!(v["http.request.method"], "PURGE!#$%&'*+-.^_`|~9");
    }

    #[test]
    fn a_grpc_call_carries_its_service_method_and_status() {
        let mut l = line(None, Some("UNAVAILABLE"));
        l.rpc =
            Some(RpcFields { service: Some("shop.Cart"), method: Some("shop.Cart/Add"), status_code: "UNAVAILABLE" });
        let text = formatted(&log("s"), &l, UnixNanos::now());
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("one JSON object");
        assert_eq!(v["rpc.system.name"], "grpc");
        assert_eq!(v["rpc.service"], "shop.Cart");
        assert_eq!(v["rpc.method"], "shop.Cart/Add");
        assert_eq!(v["rpc.response.status_code"], "UNAVAILABLE");
        let text = formatted(&log("s"), &line(None, None), UnixNanos::now());
        assert!(!text.contains("rpc."), "{text}");
    }

    #[test]
    fn hostile_header_bytes_never_break_the_line() {
        let ua: &[u8] = b"a\"b\\c\nd\x01e\xe2\x80\xa8f\xff\xe2g";
        let text = formatted(&log("s"), &line(Some(ua), None), UnixNanos::now());
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).expect("valid JSON");
        assert_eq!(v["user_agent.original"], "a\"b\\c\nd\u{1}e\u{2028}f\u{fffd}\u{fffd}g");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any line, hostile bytes in every field from the request included, is written the
        /// same through the room made for it as straight into a `Vec`, and is one JSON object.
        #[test]
        fn lines_written_in_place_equal_lines_pushed(
            path in proptest::option::of(".{0,100}"),
            route in ".{0,40}",
            client in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            ua in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..300)),
            error in proptest::option::of("[\\x00-\\x7f]{0,20}"),
            rpc in proptest::option::of(("[a-z.]{0,20}", "[\\x00-\\x7f]{0,30}")),
            status in proptest::num::u16::ANY,
            micros in proptest::num::u64::ANY,
            service in ".{0,20}",
        ) {
            let l = AccessLine {
                path: path.as_deref(),
                route: &route,
                status,
                duration_micros: micros,
                client_address: &client,
                user_agent: ua.as_deref(),
                error_type: error.as_deref(),
                rpc: rpc.as_ref().map(|(s, m)| RpcFields { service: Some(s), method: Some(m), status_code: "INTERNAL" }),
                ..line(None, None)
            };
            let log = log(&service);
            let at = UnixNanos(1_700_000_000_123_456_789);
            let mut in_place = b"before\n".to_vec();
            log.format(&mut in_place, &l, at);
            let mut pushed = b"before\n".to_vec();
            log.put(&mut pushed, &l, at);
            proptest::prop_assert_eq!(&in_place, &pushed);
            proptest::prop_assert!(in_place.len() - 7 <= log.most_bytes(&l), "the room was enough");
            let text = String::from_utf8(in_place[7..].to_vec()).expect("UTF-8");
            proptest::prop_assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "one line");
            proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(text.trim_end()).is_ok());
        }
    }

    #[test]
    fn durations_keep_microseconds() {
        for (micros, text) in [(0, "0.0"), (70, "0.07"), (3_000, "3.0"), (12_345, "12.345"), (1_500_100, "1500.1")] {
            let mut out = Vec::new();
            write_millis(&mut out, micros);
            assert_eq!(String::from_utf8(out).expect("ascii"), text);
        }
    }

    #[test]
    fn timestamps_roll_over_seconds_and_days() {
        let mut out = Vec::new();
        write_timestamp(&mut out, UnixNanos(1_700_006_399_999_999_000));
        out.push(b' ');
        write_timestamp(&mut out, UnixNanos(1_700_006_400_000_001_000));
        assert_eq!(String::from_utf8(out).expect("ascii"), "2023-11-14T23:59:59.999999Z 2023-11-15T00:00:00.000001Z");
    }
}
