//! W3C trace-context hygiene at the proxy: what the upstream receives for valid, invalid and
//! conflicting incoming trace headers. The upstream is a raw socket that records every header
//! line as received, so repeated and non-UTF-8 values are seen as they are on the wire.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Sidecar, client};
use reqwest::header::{HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
const B3_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const B3_SPAN: &str = "e457b5a2e4d86bd1";

/// One request head as the upstream received it: the request line and each header line.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: Vec<(String, Vec<u8>)>,
}

impl Seen {
    /// Every value of `name`, as text (values this test sends are ASCII or get dropped).
    fn all(&self, name: &str) -> Vec<String> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).collect()
    }

    /// The only value of `name`; fails the test when it is repeated.
    fn one(&self, name: &str) -> Option<String> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} sent {} times upstream: {all:?}", all.len());
        all.into_iter().next()
    }

    fn printable(&self) -> Vec<(String, String)> {
        self.headers.iter().map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned())).collect()
    }

    fn has_any(&self, names: &[&str]) -> Vec<String> {
        names.iter().filter(|n| !self.all(n).is_empty()).map(|n| n.to_string()).collect()
    }
}

/// An upstream that answers `200 ok` to every request and records its head.
struct Recorder {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let url = format!("http://{}", listener.local_addr().expect("upstream address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(record(conn, log.clone()));
            }
        });
        Recorder { url, seen }
    }

    /// The request the upstream received for `path` (each test uses unique paths).
    async fn received(&self, path: &str) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.seen.lock().expect("seen lock").iter().find(|s| s.path == path) {
                return s.clone();
            }
            assert!(Instant::now() < deadline, "the upstream never received {path}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn record(mut conn: TcpStream, log: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    loop {
        // Only bodiless GETs are sent, so a request ends with its head.
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let mut chunk = [0u8; 16 * 1024];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head: Vec<u8> = buf.drain(..end + 4).collect();
        let mut lines = head[..end].split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let request_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
        let headers = lines
            .filter_map(|l| {
                let colon = l.iter().position(|&b| b == b':')?;
                let name = String::from_utf8_lossy(&l[..colon]).to_ascii_lowercase();
                Some((name, l[colon + 1..].trim_ascii().to_vec()))
            })
            .collect();
        log.lock().expect("seen lock").push(Seen { path, headers });
        if conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.is_err() {
            return;
        }
    }
}

/// Sends GET `path` through the sidecar with `headers` (repeats allowed, raw bytes allowed).
async fn send(sc: &Sidecar, path: &str, headers: &[(&str, &[u8])]) {
    let mut req = client().get(sc.url(path));
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        req = req.header(name, HeaderValue::from_bytes(value).expect("header value"));
    }
    let r = req.send().await.expect("proxied request");
    assert_eq!(r.status(), 200, "{path}");
    r.bytes().await.expect("body");
}

/// The (trace id, parent id, flags) of a well-formed version-00 traceparent; fails otherwise.
fn traceparent(seen: &Seen) -> (String, String, String) {
    let tp = seen.one("traceparent").unwrap_or_else(|| panic!("no traceparent upstream for {}", seen.path));
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    assert!(
        parts.len() == 4 && parts[0] == "00" && hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2),
        "malformed traceparent upstream: {tp}"
    );
    assert_ne!(parts[1], "0".repeat(32), "{tp}");
    assert_ne!(parts[2], "0".repeat(16), "{tp}");
    (parts[1].to_string(), parts[2].to_string(), parts[3].to_string())
}

/// The span id the sidecar logged in the access line for `path`.
async fn logged_span_id(sc: &Sidecar, path: &str) -> String {
    let field = format!("\"url.path\":\"{path}\"");
    let logs = sc.stdout_until("the access line", |l| l.contains(&field)).await;
    let line = logs.lines().find(|l| l.contains(&field)).expect("access line");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON access line");
    v["span_id"].as_str().expect("span_id").to_string()
}

const B3_HEADERS: [&str; 7] =
    ["b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "uber-trace-id"];

#[tokio::test]
async fn an_invalid_traceparent_gets_a_fresh_one_and_no_tracestate() {
    let up = Recorder::start().await;
    let sc = Sidecar::start(&up.url, &[]).await;
    let valid = format!("00-{TRACE}-{PARENT}-01");
    let other = format!("00-4bf92f3577b34da6a3ce929d0e0e4737-{PARENT}-01");
    let invalid: Vec<(&str, Vec<&[u8]>)> = vec![
        ("absent", vec![]),
        ("garbage", vec![b"garbage"]),
        ("version-ff", vec![b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]),
        ("upper-case", vec![b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"]),
        ("zero-trace", vec![b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"]),
        ("zero-parent", vec![b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"]),
        ("version-00-extra", vec![b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"]),
        ("future-no-dash", vec![b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.extra"]),
        ("non-utf8", vec![b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\xff"]),
        ("repeated-same", vec![valid.as_bytes(), valid.as_bytes()]),
        ("repeated-different", vec![valid.as_bytes(), other.as_bytes()]),
    ];
    for (case, values) in &invalid {
        let path = format!("/invalid/{case}");
        let mut headers: Vec<(&str, &[u8])> = values.iter().map(|v| ("traceparent", *v)).collect();
        headers.push(("tracestate", TRACESTATE.as_bytes()));
        send(&sc, &path, &headers).await;
        let seen = up.received(&path).await;
        let (trace, _, _) = traceparent(&seen);
        assert_ne!(trace, TRACE, "{case}: a new trace is started");
        assert_ne!(trace, "4bf92f3577b34da6a3ce929d0e0e4737", "{case}");
        assert_eq!(seen.all("tracestate"), Vec::<String>::new(), "{case}: tracestate must not be forwarded");
    }
}

#[tokio::test]
async fn a_valid_traceparent_keeps_its_tracestate_and_gets_the_sidecar_span_as_parent() {
    let up = Recorder::start().await;
    let sc = Sidecar::start(&up.url, &[]).await;
    for (case, flags) in [("sampled", "01"), ("unsampled", "00")] {
        let path = format!("/valid/{case}");
        let tp = format!("00-{TRACE}-{PARENT}-{flags}");
        send(&sc, &path, &[("traceparent", tp.as_bytes()), ("tracestate", TRACESTATE.as_bytes())]).await;
        let seen = up.received(&path).await;
        let (trace, parent, out_flags) = traceparent(&seen);
        assert_eq!(trace, TRACE, "{case}");
        assert_eq!(out_flags, flags, "{case}: the caller's decision is kept");
        assert_ne!(parent, PARENT, "{case}");
        assert_eq!(seen.one("tracestate").as_deref(), Some(TRACESTATE), "{case}: forwarded unchanged");
    }
    // The new parent id is the sidecar's own span, as logged.
    for case in ["sampled", "unsampled"] {
        let path = format!("/valid/{case}");
        let (_, parent, _) = traceparent(&up.received(&path).await);
        assert_eq!(logged_span_id(&sc, &path).await, parent, "{case}");
    }

    // A future version is read as 00 and downgraded; its tracestate belongs to it.
    let path = "/valid/future-version";
    let tp = format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like");
    send(&sc, path, &[("traceparent", tp.as_bytes()), ("tracestate", TRACESTATE.as_bytes())]).await;
    let seen = up.received(path).await;
    assert_eq!(traceparent(&seen).0, TRACE);
    assert_eq!(seen.one("tracestate").as_deref(), Some(TRACESTATE));
}

#[tokio::test]
async fn tracestate_split_over_fields_is_combined_and_an_invalid_one_is_discarded() {
    let up = Recorder::start().await;
    let sc = Sidecar::start(&up.url, &[]).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let tp = tp.as_bytes();

    send(&sc, "/state/split", &[("traceparent", tp), ("tracestate", b"foo=1,bar=2"), ("tracestate", b"baz=3")]).await;
    let seen = up.received("/state/split").await;
    assert_eq!(seen.all("tracestate"), vec!["foo=1,bar=2,baz=3".to_string()], "one combined field, in order");

    send(&sc, "/state/empty", &[("traceparent", tp), ("tracestate", b"")]).await;
    assert_eq!(up.received("/state/empty").await.all("tracestate"), Vec::<String>::new(), "empty is not sent");

    let too_many: String = (1..=33).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
    let invalid: [(&str, &[u8]); 6] = [
        ("duplicate-key", b"foo=1,foo=2"),
        ("upper-case-key", b"FOO=1"),
        ("empty-value", b"foo=,bar=3"),
        ("bad-vendor", b"foo@=1,bar=2"),
        ("non-utf8", b"foo=\xff"),
        ("33-members", too_many.as_bytes()),
    ];
    for (case, state) in invalid {
        let path = format!("/state/{case}");
        send(&sc, &path, &[("traceparent", tp), ("tracestate", state)]).await;
        let seen = up.received(&path).await;
        assert_eq!(traceparent(&seen).0, TRACE, "{case}: a bad tracestate does not affect traceparent");
        assert_eq!(seen.all("tracestate"), Vec::<String>::new(), "{case}: discarded whole");
    }
    let (path, ok) = ("/state/32-members", (1..=32).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(","));
    send(&sc, path, &[("traceparent", tp), ("tracestate", ok.as_bytes())]).await;
    assert_eq!(up.received(path).await.one("tracestate"), Some(ok));
}

/// Each way a caller may send a valid B3 or Jaeger context next to an invalid traceparent.
fn other_contexts() -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    vec![
        ("b3", vec![("b3", format!("{B3_TRACE}-{B3_SPAN}-1"))]),
        (
            "b3multi",
            vec![
                ("x-b3-traceid", B3_TRACE.to_string()),
                ("x-b3-spanid", B3_SPAN.to_string()),
                ("x-b3-parentspanid", "0000000000000001".to_string()),
                ("x-b3-sampled", "1".to_string()),
                ("x-b3-flags", "1".to_string()),
            ],
        ),
        ("jaeger", vec![("uber-trace-id", format!("{B3_TRACE}:{B3_SPAN}:0:1"))]),
    ]
}

/// Sends every `other_contexts` case next to an invalid traceparent (and all of them at once)
/// and checks that the upstream gets one context: the sidecar's span in the same trace in
/// every format present, the configured formats present, the others absent.
async fn check_one_context(propagators: &str, expect: &[&str]) {
    let up = Recorder::start().await;
    let sc = Sidecar::start(&up.url, &["--tracing-propagators", propagators]).await;
    let mut all: Vec<(&str, String)> = Vec::new();
    let mut cases = other_contexts();
    for (_, headers) in &cases {
        all.extend(headers.iter().cloned());
    }
    cases.push(("all", all));
    for (case, extra) in &cases {
        let path = format!("/{}/{case}", propagators.replace(',', "+"));
        let mut headers: Vec<(&str, &[u8])> = vec![("traceparent", b"00-not-a-valid-traceparent-01")];
        headers.push(("tracestate", TRACESTATE.as_bytes()));
        headers.extend(extra.iter().map(|(n, v)| (*n, v.as_bytes())));
        send(&sc, &path, &headers).await;
        let seen = up.received(&path).await;
        let (trace, span, flags) = traceparent(&seen);
        let what = format!("{propagators} / {case}: {:?}", seen.printable());
        // The valid B3/Jaeger context is continued: same trace, the caller's decision.
        assert_eq!(trace, B3_TRACE, "{what}");
        assert_eq!(flags, "01", "{what}");
        assert_eq!(span, logged_span_id(&sc, &path).await, "{what}");

        let present = seen.has_any(&B3_HEADERS);
        let mut wanted: Vec<String> = Vec::new();
        if expect.contains(&"b3") {
            wanted.push("b3".into());
            assert_eq!(seen.one("b3"), Some(format!("{trace}-{span}-1")), "{what}");
        }
        if expect.contains(&"b3multi") {
            wanted.extend(["x-b3-traceid", "x-b3-spanid", "x-b3-sampled"].map(String::from));
            assert_eq!(seen.one("x-b3-traceid"), Some(trace.clone()), "{what}");
            assert_eq!(seen.one("x-b3-spanid"), Some(span.clone()), "{what}");
            assert_eq!(seen.one("x-b3-sampled").as_deref(), Some("1"), "{what}");
            // The parent of the sidecar's span is the caller's span.
            if let Some(parent) = seen.one("x-b3-parentspanid") {
                wanted.push("x-b3-parentspanid".into());
                assert_eq!(parent, B3_SPAN, "{what}");
            }
        }
        if expect.contains(&"jaeger") {
            wanted.push("uber-trace-id".into());
            assert_eq!(seen.one("uber-trace-id"), Some(format!("{trace}:{span}:0:01")), "{what}");
        }
        wanted.sort_by_key(|n| B3_HEADERS.iter().position(|h| h == n));
        assert_eq!(present, wanted, "{what}");
        // The tracestate belonged to the invalid traceparent.
        assert_eq!(seen.all("tracestate"), Vec::<String>::new(), "{what}");
    }
}

#[tokio::test]
async fn an_invalid_traceparent_and_a_valid_b3_give_one_context_without_b3_configured() {
    check_one_context("tracecontext", &[]).await;
}

#[tokio::test]
async fn an_invalid_traceparent_and_a_valid_b3_give_one_context_with_b3_configured() {
    check_one_context("tracecontext,b3", &["b3"]).await;
}

#[tokio::test]
async fn an_invalid_traceparent_and_a_valid_b3_give_one_context_with_every_format_configured() {
    check_one_context("b3multi,jaeger,b3", &["b3", "b3multi", "jaeger"]).await;
}

#[tokio::test]
async fn a_valid_traceparent_wins_and_other_formats_follow_it() {
    let up = Recorder::start().await;
    let sc = Sidecar::start(&up.url, &["--tracing-propagators", "jaeger"]).await;
    let tp = format!("00-{TRACE}-{PARENT}-00");
    let b3 = format!("{B3_TRACE}-{B3_SPAN}-1");
    let jaeger = format!("{B3_TRACE}:{B3_SPAN}:0:1");
    let path = "/winner/traceparent";
    send(
        &sc,
        path,
        &[
            ("traceparent", tp.as_bytes()),
            ("tracestate", TRACESTATE.as_bytes()),
            ("b3", b3.as_bytes()),
            ("uber-trace-id", jaeger.as_bytes()),
        ],
    )
    .await;
    let seen = up.received(path).await;
    let (trace, span, flags) = traceparent(&seen);
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "00"));
    assert_eq!(seen.one("tracestate").as_deref(), Some(TRACESTATE));
    assert_eq!(seen.one("uber-trace-id"), Some(format!("{TRACE}:{span}:0:00")));
    assert_eq!(seen.has_any(&B3_HEADERS), vec!["uber-trace-id".to_string()], "{:?}", seen.printable());
}
