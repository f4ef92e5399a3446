//! The proxy's upstream HTTP/1.1 side on the wire: a scripted raw-socket upstream answers with
//! exact bytes (chunked, close-delimited, bodiless, interim, broken) and records what it received.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{Sidecar, client, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request as the upstream received it, body de-chunked.
#[derive(Clone, Debug)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// What the upstream does after reading a request head.
enum Then {
    /// Read the body, answer, keep the connection open.
    Answer(Vec<u8>),
    /// Read the body, answer, close.
    AnswerAndClose(Vec<u8>),
    /// Close without answering (as an upstream's idle timeout racing a request does).
    Close,
    /// Answer before reading the body, then read and discard until the peer closes.
    AnswerEarly(Vec<u8>),
}

/// `script(request, index of the request on its connection)` decides each answer.
type Script = Arc<dyn Fn(&Seen, usize) -> Then + Send + Sync>;

struct RawUpstream {
    url: String,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl RawUpstream {
    async fn start(script: impl Fn(&Seen, usize) -> Then + Send + Sync + 'static) -> RawUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let url = format!("http://{}", listener.local_addr().expect("upstream address"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let (counter, log) = (accepted.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(conn, script.clone(), log.clone()));
            }
        });
        RawUpstream { url, accepted, seen }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }
}

async fn serve_connection(mut conn: TcpStream, script: Script, log: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    for index in 0.. {
        let Some(end) = read_until(&mut conn, &mut buf, b"\r\n\r\n").await else { return };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let mut seen = Seen { head, body: Vec::new() };
        let then = script(&seen, index);
        if let Then::AnswerEarly(answer) = &then {
            let _ = conn.write_all(answer).await;
            let mut sink = [0u8; 64 * 1024];
            while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        if !read_body(&mut conn, &mut buf, &mut seen).await {
            return;
        }
        log.lock().expect("seen lock").push(seen);
        let (answer, close) = match then {
            Then::Answer(a) => (a, false),
            Then::AnswerAndClose(a) => (a, true),
            Then::Close | Then::AnswerEarly(_) => return,
        };
        if conn.write_all(&answer).await.is_err() || close {
            return;
        }
    }
}

/// Reads until `buf` holds `pattern`; its position, or None when the peer closed first.
async fn read_until(conn: &mut TcpStream, buf: &mut Vec<u8>, pattern: &[u8]) -> Option<usize> {
    loop {
        if let Some(p) = buf.windows(pattern.len()).position(|w| w == pattern) {
            return Some(p);
        }
        let mut chunk = [0u8; 16 * 1024];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn read_exact_into(conn: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
    while buf.len() < n {
        let mut chunk = [0u8; 16 * 1024];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    Some(buf.drain(..n).collect())
}

/// Reads the body the head announces (content-length or chunked) into `seen.body`.
async fn read_body(conn: &mut TcpStream, buf: &mut Vec<u8>, seen: &mut Seen) -> bool {
    if seen.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let Some(end) = read_until(conn, buf, b"\r\n").await else { return false };
            let line = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 2);
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).expect("chunk size");
            let Some(mut data) = read_exact_into(conn, buf, size + 2).await else { return false };
            if size == 0 {
                return true; // no trailers are sent by the proxy: the empty line followed
            }
            data.truncate(size);
            seen.body.extend_from_slice(&data);
        }
    }
    let length = seen.header("content-length").map_or(0, |v| v.parse().expect("content-length"));
    match read_exact_into(conn, buf, length).await {
        Some(body) => {
            seen.body = body;
            true
        }
        None => false,
    }
}

fn ok(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

fn error_series(method: &str, route: &str, status: u16, error: &str) -> String {
    format!(
        "http_server_request_duration_seconds_count{{http_request_method=\"{method}\",http_route=\"{route}\",http_response_status_code=\"{status}\",error_type=\"{error}\"}}"
    )
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let up = RawUpstream::start(|_, _| Then::Answer(ok("ok"))).await;
    let sc = Sidecar::start(&up.url, &[]).await;
    let c = client();
    for i in 0..20 {
        let r = c.get(sc.url(&format!("/n/{i}"))).send().await.expect("request");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "ok");
    }
    assert_eq!(up.accepted(), 1, "20 sequential requests on one client connection travel on one upstream connection");
    let m = sc.metrics().await;
    assert_eq!(sample(&m, "redline_upstream_connections{state=\"idle\"}"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "redline_upstream_connections{state=\"active\"}"), Some(0.0), "{m}");
}

#[tokio::test]
async fn connections_the_upstream_closed_while_idle_are_never_a_502() {
    let up = RawUpstream::start(|_, _| Then::AnswerAndClose(ok("ok"))).await;
    let sc = Sidecar::start(&up.url, &[]).await;
    let c = client();
    for i in 0..30 {
        let r = c.get(sc.url(&format!("/n/{i}"))).send().await.expect("request");
        assert_eq!(r.status(), 200, "request {i} must not fail on a connection the upstream closed");
        assert_eq!(r.text().await.expect("body"), "ok");
    }
    assert_eq!(up.accepted(), 30, "one upstream connection per request");
    let m = sc
        .metrics_until("no idle connection left", |m| {
            sample(m, "redline_upstream_connections{state=\"idle\"}") == Some(0.0)
        })
        .await;
    let ok: f64 = m
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{") && l.contains("status_code=\"200\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(ok, 30.0, "{m}");
}

#[tokio::test]
async fn idempotent_requests_are_resent_when_a_reused_connection_dies_unanswered() {
    // Every connection answers its first request and closes on the second without a word:
    // the race of an upstream idle timeout with a request on the way.
    let up = RawUpstream::start(|_, i| if i == 0 { Then::Answer(ok("ok")) } else { Then::Close }).await;
    let sc = Sidecar::start(&up.url, &[]).await;
    let c = client();
    for i in 0..5 {
        let r = c.get(sc.url(&format!("/get/{i}"))).send().await.expect("GET");
        assert_eq!(r.status(), 200, "GET {i} is resent on a new connection");
        assert_eq!(r.text().await.expect("body"), "ok");
    }
    assert_eq!(up.accepted(), 5, "each GET after the first was resent once, on a new connection");
    // A POST may have had effects: it is never sent twice, the client gets the 502.
    let r = c.post(sc.url("/post")).send().await.expect("POST");
    assert_eq!(r.status(), 502);
    assert_eq!(up.accepted(), 5);
    let m = sc.metrics_until("the 502", |m| m.contains("status_code=\"502\"")).await;
    assert_eq!(sample(&m, &error_series("POST", "/post", 502, "upstream_error")), Some(1.0), "{m}");
}

#[tokio::test]
async fn chunked_and_close_delimited_bodies_reach_the_client_intact() {
    let up = RawUpstream::start(|seen, _| match seen.path() {
        "/chunked" => Then::Answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 9\r\n\r\n".to_vec(),
        ),
        _ => Then::AnswerAndClose(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the upstream closes".to_vec()),
    })
    .await;
    let sc = Sidecar::start(&up.url, &[]).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(sc.url("/chunked")).send().await.expect("chunked");
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("x-sum").is_none(), "a trailer never becomes a header field");
        for hop in ["x-hop", "keep-alive"] {
            assert!(r.headers().get(hop).is_none(), "{hop} is the upstream hop's own: {:?}", r.headers());
        }
        assert_eq!(r.text().await.expect("body"), "hello world");
    }
    assert_eq!(up.accepted(), 1, "a chunked body read to its end leaves the connection reusable");
    for _ in 0..2 {
        let r = c.get(sc.url("/close")).send().await.expect("close-delimited");
        assert_eq!(r.text().await.expect("body"), "until the upstream closes");
    }
    let r = c.get(sc.url("/chunked")).send().await.expect("chunked after close-delimited");
    assert_eq!(r.text().await.expect("body"), "hello world");
    assert_eq!(up.accepted(), 3, "each close-delimited body spent its connection");
}

#[tokio::test]
async fn bodiless_responses_spend_their_connection_and_interim_ones_do_not() {
    let up = RawUpstream::start(|seen, _| {
        Then::Answer(match seen.path() {
            "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n".to_vec(),
            "/204" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            "/304" => b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n".to_vec(),
            _ => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
                .to_vec(),
        })
    })
    .await;
    let sc = Sidecar::start(&up.url, &["--workers", "1"]).await;
    let c = client();
    for _ in 0..2 {
        let r = c.post(sc.url("/interim")).body("x").send().await.expect("interim");
        assert_eq!(r.status(), 201);
        assert_eq!(r.text().await.expect("body"), "done");
    }
    assert_eq!(up.accepted(), 1, "1xx before the answer leave the connection usable");
    for _ in 0..2 {
        let r = c.head(sc.url("/head")).send().await.expect("HEAD");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"], "9", "HEAD keeps the length GET would have");
        assert_eq!(c.get(sc.url("/204")).send().await.expect("204").status(), 204);
        let r = c.get(sc.url("/304")).send().await.expect("304");
        assert_eq!((r.status().as_u16(), r.headers()["etag"].to_str().ok()), (304, Some("\"v1\"")));
    }
    // A body sent anyway after HEAD, 204 or 304 would be read as the next request's answer, so
    // such a connection is closed rather than pooled (data_path.rs sends one).
    assert_eq!(up.accepted(), 6, "each of the six bodiless answers spent its connection");
}

#[tokio::test]
async fn request_bodies_go_upstream_framed_as_announced() {
    let up = RawUpstream::start(|_, _| Then::Answer(ok("ok"))).await;
    let sc = Sidecar::start(&up.url, &[]).await;
    let c = client();
    let r = c.put(sc.url("/fixed")).body(vec![b'f'; 100_000]).send().await.expect("fixed-length body");
    assert_eq!(r.status(), 200);
    let parts = ["stream", "ed in ", "parts"].map(|s| Ok::<_, std::io::Error>(bytes::Bytes::from_static(s.as_bytes())));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(parts));
    let r = c.post(sc.url("/streamed")).body(body).send().await.expect("streamed body");
    assert_eq!(r.status(), 200);
    let r = c.post(sc.url("/empty")).send().await.expect("empty body");
    assert_eq!(r.status(), 200);
    let seen = up.seen();
    let fixed = seen.iter().find(|s| s.path() == "/fixed").expect("fixed request");
    assert_eq!(fixed.header("content-length"), Some("100000"));
    assert_eq!(fixed.body, vec![b'f'; 100_000]);
    let streamed = seen.iter().find(|s| s.path() == "/streamed").expect("streamed request");
    assert_eq!(streamed.header("transfer-encoding"), Some("chunked"));
    assert_eq!(streamed.body, b"streamed in parts");
    let empty = seen.iter().find(|s| s.path() == "/empty").expect("empty request");
    assert_eq!(empty.header("content-length"), Some("0"));
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn an_answer_before_the_upload_ends_reaches_the_client() {
    let up = RawUpstream::start(|_, _| {
        Then::AnswerEarly(
            b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large".to_vec(),
        )
    })
    .await;
    let sc = Sidecar::start(&up.url, &[]).await;
    // A raw client, so that nothing but the answer is awaited: 8 MiB announced, 1 MiB sent.
    let mut conn = TcpStream::connect(sc.proxy).await.expect("connect to the sidecar");
    conn.write_all(b"POST /upload HTTP/1.1\r\nhost: svc\r\ncontent-length: 8388608\r\n\r\n").await.expect("head");
    conn.write_all(&vec![b'u'; 1024 * 1024]).await.expect("first MiB");
    let mut answer = Vec::new();
    // A proxy that only listened for the answer after sending the whole body would wait forever.
    let end =
        tokio::time::timeout(std::time::Duration::from_secs(10), read_until(&mut conn, &mut answer, b"too large"))
            .await
            .expect("the answer came while the upload was unfinished");
    let answer = String::from_utf8_lossy(&answer);
    assert!(end.is_some(), "no full answer: {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    let m = sc.metrics_until("the 413", |m| m.contains("status_code=\"413\"")).await;
    let series = "http_server_request_duration_seconds_count{http_request_method=\"POST\",http_route=\"/upload\",http_response_status_code=\"413\"}";
    assert_eq!(sample(&m, series), Some(1.0), "{m}");
}

#[tokio::test]
async fn answers_that_are_not_http_or_end_early_are_upstream_errors() {
    let up = RawUpstream::start(|seen, _| match seen.path() {
        "/garbage" => Then::AnswerAndClose(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()),
        "/length" => Then::AnswerAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello".to_vec()),
        _ => Then::AnswerAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly twenty-six bytes here".to_vec()),
    })
    .await;
    let sc = Sidecar::start(&up.url, &[]).await;
    let c = client();
    let r = c.get(sc.url("/garbage")).send().await.expect("garbage");
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.expect("JSON error body");
    assert_eq!(body["error"], "upstream closed the connection or sent an invalid response");
    assert_eq!(c.get(sc.url("/length")).send().await.expect("conflicting length").status(), 502);
    // The client sees the exchange fail (before or after the head, as the bytes were buffered),
    // never a short body passed off as complete.
    if let Ok(r) = c.get(sc.url("/cut")).send().await {
        assert!(r.bytes().await.is_err(), "a body cut short must not look complete");
    }
    let m = sc.metrics_until("the cut body", |m| m.contains("/cut")).await;
    assert_eq!(sample(&m, &error_series("GET", "/garbage", 502, "upstream_error")), Some(1.0), "{m}");
    assert_eq!(sample(&m, &error_series("GET", "/length", 502, "upstream_error")), Some(1.0), "{m}");
    assert_eq!(sample(&m, &error_series("GET", "/cut", 200, "upstream_error")), Some(1.0), "{m}");
}

/// Reads one response with a `content-length` from a raw client socket: (head, body).
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> (String, Vec<u8>) {
    let end = read_until(conn, buf, b"\r\n\r\n").await.expect("a response head") + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let len = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("a content-length in {head:?}"));
    let body = read_exact_into(conn, buf, len).await.expect("the response body");
    (head, body)
}

#[tokio::test]
async fn http10_upstream_answers_reach_http11_clients_as_http11_with_keep_alive() {
    let up = RawUpstream::start(|_, _| {
        Then::Answer(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello".to_vec())
    })
    .await;
    let sc = Sidecar::start(&up.url, &[]).await;
    let mut conn = TcpStream::connect(sc.proxy).await.expect("connect to the sidecar");
    let mut buf = Vec::new();
    for i in 0..3 {
        conn.write_all(format!("GET /old/{i} HTTP/1.1\r\nHost: app\r\n\r\n").as_bytes()).await.expect("request");
        let (head, body) = read_response(&mut conn, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200 "), "request {i}: the client hears HTTP/1.1: {head:?}");
        assert!(!head.to_ascii_lowercase().contains("connection: close"), "request {i}: kept alive: {head:?}");
        assert_eq!(body, b"hello");
    }
    assert_eq!(up.accepted(), 1, "the HTTP/1.0 keep-alive upstream connection is reused too");
}
