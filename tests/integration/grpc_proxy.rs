//! gRPC and HTTP/2 end to end through the real binary: grpcio's server and client (PyPI) on
//! either side of the sidecar, hand-made HTTP/2 peers where a test needs a misbehaving one,
//! and what the sidecar records of each call (metrics, access lines, spans).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::grpc::{GrpcServer, call};
use crate::common::otlp::{OtlpReceiver, int, string};
use crate::common::{Sidecar, client, sample};

/// `call` off the test's runtime, which keeps serving what the test runs in-process.
async fn call_async(target: String, args: Vec<String>) -> Value {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        call(&target, &args)
    })
    .await
    .expect("client thread")
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

async fn sidecar_for(server: &GrpcServer, extra: &[&str]) -> Sidecar {
    Sidecar::start(&format!("http://{}", server.target()), extra).await
}

fn rpc_count(metrics: &str, method: &str, code: &str, error: bool) -> f64 {
    let error = if error { format!(",error_type=\"{code}\"") } else { String::new() };
    let series = format!(
        "rpc_server_call_duration_seconds_count{{rpc_system_name=\"grpc\",rpc_method=\"{method}\",rpc_response_status_code=\"{code}\"{error}}}"
    );
    sample(metrics, &series).unwrap_or(0.0)
}

fn access_lines(logs: &str) -> Vec<Value> {
    logs.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|v| v["target"] == "access").collect()
}

/// A gRPC message: uncompressed, 4-byte big-endian length, the bytes.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut b = vec![0u8];
    b.extend_from_slice(&(message.len() as u32).to_be_bytes());
    b.extend_from_slice(message);
    b.into()
}

/// What an HTTP/2 exchange made by hand brought back.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

/// One POST over h2c with prior knowledge, the way gRPC clients send calls.
async fn h2_post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: Bytes) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let mut req = Request::post(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send.send_request(req.body(Full::new(body)).expect("request")).await.expect("response head");
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.expect("response body");
    let trailers = collected.trailers().cloned();
    conn.abort();
    Answer { status: parts.status.as_u16(), headers: parts.headers, body: collected.to_bytes(), trailers }
}

const GRPC_HEADERS: [(&str, &str); 2] = [("content-type", "application/grpc"), ("te", "trailers")];

#[tokio::test]
async fn unary_calls_pass_with_their_metadata_and_are_recorded_as_rpcs() {
    let server = GrpcServer::start(&[]);
    let otlp = OtlpReceiver::http().await;
    let sidecar = sidecar_for(&server, &["--tracing-endpoint", &otlp.endpoint()]).await;
    let target = sidecar.proxy.to_string();

    let ok = call_async(target.clone(), args(&["unary", "hello"])).await;
    assert_eq!((ok["code"].as_str(), ok["response"].as_str()), (Some("OK"), Some("hello")), "{ok}");
    assert_eq!(ok["initial_metadata"]["x-echo-header"], "yes", "response headers pass: {ok}");
    assert_eq!(ok["trailing_metadata"]["x-echo-trailer"], "5", "trailers pass: {ok}");

    let metrics =
        sidecar.metrics_until("the call", |m| rpc_count(m, "redline.test.Echo/Unary", "OK", false) == 1.0).await;
    assert!(
        metrics.contains("# TYPE rpc_server_call_duration_seconds histogram"),
        "the OpenTelemetry RPC histogram: {metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "http_server_request_duration_seconds_count{http_request_method=\"POST\",http_route=\"/redline.test.Echo/Unary\",http_response_status_code=\"200\"}"
        ),
        Some(1.0),
        "the call is also the HTTP/2 request it is: {metrics}"
    );
    assert!(
        metrics.contains("redline_upstream_connections{state=\"idle\"} 1"),
        "one multiplexed HTTP/2 connection to the upstream, idle again: {metrics}"
    );

    let logs = sidecar.stdout_until("the call's access line", |l| l.contains("\"rpc.method\"")).await;
    let line = access_lines(&logs).into_iter().find(|l| l["rpc.method"] == "redline.test.Echo/Unary").expect("line");
    assert_eq!(line["rpc.system.name"], "grpc");
    assert_eq!(line["rpc.service"], "redline.test.Echo");
    assert_eq!(line["rpc.response.status_code"], "OK");
    assert!(line.get("error.type").is_none(), "{line}");

    let span = otlp.received.wait_for("for the call", |s| s.span.name == "redline.test.Echo/Unary").await;
    assert_eq!(string(span.attr("rpc.system.name")), Some("grpc"));
    assert_eq!(string(span.attr("rpc.method")), Some("redline.test.Echo/Unary"));
    assert_eq!(string(span.attr("rpc.service")), Some("redline.test.Echo"));
    assert_eq!(string(span.attr("rpc.response.status_code")), Some("OK"));
    assert_eq!(int(span.attr("rpc.grpc.status_code")), Some(0));
    assert_eq!(span.span.status.as_ref().map(|s| s.code), Some(0), "OK leaves the status unset");
}

#[tokio::test]
async fn grpc_errors_reach_the_client_with_details_and_only_server_errors_count() {
    let server = GrpcServer::start(&[]);
    let otlp = OtlpReceiver::http().await;
    let sidecar = sidecar_for(&server, &["--tracing-endpoint", &otlp.endpoint()]).await;
    let target = sidecar.proxy.to_string();

    // Trailers-only answers (abort before any message).
    let not_found = call_async(target.clone(), args(&["fail", "NOT_FOUND:no such cart"])).await;
    assert_eq!((not_found["code"].as_str(), not_found["details"].as_str()), (Some("NOT_FOUND"), Some("no such cart")));
    assert_eq!(not_found["trailing_metadata"]["x-fail-detail"], "no such cart", "{not_found}");
    let unavailable = call_async(target.clone(), args(&["fail", "UNAVAILABLE:db down"])).await;
    assert_eq!((unavailable["code"].as_str(), unavailable["details"].as_str()), (Some("UNAVAILABLE"), Some("db down")));
    // The status in trailers after a message.
    let internal = call_async(target.clone(), args(&["fail-after-message", "INTERNAL:broke midway"])).await;
    assert_eq!((internal["code"].as_str(), internal["messages"].as_i64()), (Some("INTERNAL"), Some(1)), "{internal}");

    let m = sidecar
        .metrics_until("three failed calls", |m| {
            rpc_count(m, "redline.test.Echo/FailAfterMessage", "INTERNAL", true) == 1.0
        })
        .await;
    assert_eq!(rpc_count(&m, "redline.test.Echo/Fail", "NOT_FOUND", false), 1.0, "NOT_FOUND is no server error: {m}");
    assert_eq!(rpc_count(&m, "redline.test.Echo/Fail", "UNAVAILABLE", true), 1.0, "{m}");
    // The HTTP view counts the server errors too (status 200, error_type the code), so the
    // shipped HTTP rules see a failing gRPC service.
    let http = |status_and_error: &str| {
        sample(
            &m,
            &format!(
                "http_server_request_duration_seconds_count{{http_request_method=\"POST\",http_route=\"/redline.test.Echo/Fail\",http_response_status_code=\"200\"{status_and_error}}}"
            ),
        )
    };
    assert_eq!(http(",error_type=\"UNAVAILABLE\""), Some(1.0), "{m}");
    assert_eq!(http(""), Some(1.0), "NOT_FOUND: no error_type: {m}");

    let span = otlp
        .received
        .wait_for("for UNAVAILABLE", |s| string(s.attr("rpc.response.status_code")) == Some("UNAVAILABLE"))
        .await;
    assert_eq!(string(span.attr("error.type")), Some("UNAVAILABLE"));
    assert_eq!(span.span.status.as_ref().map(|s| s.code), Some(2), "a server error sets the span's status to Error");
    let span = otlp
        .received
        .wait_for("for NOT_FOUND", |s| string(s.attr("rpc.response.status_code")) == Some("NOT_FOUND"))
        .await;
    assert_eq!(span.span.status.as_ref().map(|s| s.code), Some(0), "NOT_FOUND is the caller's");

    // A method the server does not have: UNIMPLEMENTED, and no route is made of it.
    let unknown = call_async(target.clone(), args(&["raw", "/redline.test.Echo/NoSuchMethod", "x"])).await;
    assert_eq!(unknown["code"], "UNIMPLEMENTED", "{unknown}");
    let m = sidecar.metrics_until("the unknown method", |m| rpc_count(m, "_OTHER", "UNIMPLEMENTED", true) == 1.0).await;
    assert!(!m.contains("NoSuchMethod"), "unknown methods share _OTHER: {m}");
    assert_eq!(
        sample(
            &m,
            "http_server_request_duration_seconds_count{http_request_method=\"POST\",http_route=\"__unmatched__\",http_response_status_code=\"200\"}"
        ),
        Some(1.0),
        "a client calling a method that does not exist cannot raise the service's error ratio, as with a 404: {m}"
    );
}

#[tokio::test]
async fn streams_of_thousands_of_messages_pass_both_ways_with_memory_bounded() {
    let server = GrpcServer::start(&[]);
    let sidecar = sidecar_for(&server, &[]).await;
    let target = sidecar.proxy.to_string();

    // 100 MB from the server: flow control keeps the sidecar's memory to its windows.
    let down = call_async(target.clone(), args(&["server-stream", "1600", "65536"])).await;
    assert_eq!((down["code"].as_str(), down["messages"].as_i64()), (Some("OK"), Some(1600)), "{down}");
    assert_eq!(down["bytes"].as_i64(), Some(1600 * 65536));
    let up = call_async(target.clone(), args(&["client-stream", "1000", "65536"])).await;
    assert_eq!((up["code"].as_str(), up["response"].as_str()), (Some("OK"), Some("1000:65536000")), "{up}");
    let bidi = call_async(target.clone(), args(&["bidi", "5000", "100"])).await;
    assert_eq!(
        (bidi["code"].as_str(), bidi["messages"].as_i64(), bidi["mismatches"].as_i64()),
        (Some("OK"), Some(5000), Some(0)),
        "{bidi}"
    );
    let rss = sidecar.peak_rss_bytes();
    assert!(rss < 64 << 20, "peak RSS {} MiB after 100 MB each way", rss >> 20);
    let m = sidecar.metrics_until("the streams", |m| rpc_count(m, "redline.test.Echo/Bidi", "OK", false) == 1.0).await;
    assert_eq!(rpc_count(&m, "redline.test.Echo/ServerStream", "OK", false), 1.0, "{m}");
    assert_eq!(rpc_count(&m, "redline.test.Echo/ClientStream", "OK", false), 1.0, "{m}");
}

#[tokio::test]
async fn deadlines_end_calls_with_deadline_exceeded_and_long_calls_are_not_cut_by_upstream_timeout() {
    let server = GrpcServer::start(&[]);
    // `upstream_timeout` is far shorter than the calls: it does not apply to gRPC, whose calls
    // are bounded by their deadline and by `stream_idle_timeout`.
    let sidecar = sidecar_for(&server, &["--upstream-timeout", "100ms"]).await;
    let target = sidecar.proxy.to_string();
    let slow = call_async(target.clone(), args(&["sleep", "600"])).await;
    assert_eq!(slow["code"], "OK", "a healthy call longer than upstream_timeout: {slow}");
    let stream = call_async(target.clone(), args(&["bidi", "20", "10"])).await;
    assert_eq!(stream["code"], "OK", "{stream}");

    // The client's own deadline: it reads DEADLINE_EXCEEDED (from itself or the sidecar).
    let t = Instant::now();
    let late = call_async(target.clone(), args(&["--timeout", "0.3", "sleep", "3000"])).await;
    assert_eq!(late["code"], "DEADLINE_EXCEEDED", "{late}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // The sidecar's own enforcement: a `grpc-timeout` far shorter than the client waits.
    let t = Instant::now();
    let a = h2_post(
        sidecar.proxy,
        "/redline.test.Echo/Sleep",
        &[GRPC_HEADERS[0], GRPC_HEADERS[1], ("grpc-timeout", "200m")],
        grpc_frame(b"3000"),
    )
    .await;
    let waited = t.elapsed();
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["grpc-status"], "4", "trailers-only DEADLINE_EXCEEDED: {:?}", a.headers);
    assert!(waited >= Duration::from_millis(200) && waited < Duration::from_millis(1500), "{waited:?}");
    let m = sidecar
        .metrics_until("the expired call", |m| {
            rpc_count(m, "redline.test.Echo/Sleep", "DEADLINE_EXCEEDED", true) >= 1.0
        })
        .await;
    assert_eq!(rpc_count(&m, "redline.test.Echo/Sleep", "OK", false), 1.0, "{m}");

    // A deadline that passes while the response streams: the sidecar ends it with trailers.
    let t = Instant::now();
    let a = h2_post(
        sidecar.proxy,
        "/redline.test.Echo/ServerStream",
        &[GRPC_HEADERS[0], GRPC_HEADERS[1], ("grpc-timeout", "300m")],
        grpc_frame(b"100000:1024"),
    )
    .await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(!a.body.is_empty(), "messages came before the deadline");
    let trailers = a.trailers.expect("the stream ends with trailers");
    assert_eq!(trailers["grpc-status"], "4", "{trailers:?}");
}

#[tokio::test]
async fn an_upstream_that_stops_sending_is_cut_at_stream_idle_timeout() {
    let server = GrpcServer::start(&[]);
    let sidecar = sidecar_for(&server, &["--stream-idle-timeout", "300ms"]).await;
    let t = Instant::now();
    let cut = call_async(sidecar.proxy.to_string(), args(&["sleep", "3000"])).await;
    assert_eq!(cut["code"], "UNAVAILABLE", "{cut}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let m = sidecar
        .metrics_until("the cut call", |m| rpc_count(m, "redline.test.Echo/Sleep", "UNAVAILABLE", true) == 1.0)
        .await;
    assert!(m.contains("error_type=\"timeout\""), "the HTTP view says why: {m}");
}

#[tokio::test]
async fn goaway_lets_calls_in_flight_finish_and_new_calls_go_to_the_new_server() {
    let server = GrpcServer::start(&[]);
    let port = server.port;
    let sidecar = sidecar_for(&server, &[]).await;
    let target = sidecar.proxy.to_string();
    assert_eq!(call_async(target.clone(), args(&["unary", "warm"])).await["code"], "OK");

    // A call in flight when the server is asked to stop (GOAWAY), then a new server.
    let in_flight = tokio::spawn(call_async(target.clone(), args(&["sleep", "800"])));
    sidecar
        .metrics_until("the call in flight", |m| {
            m.contains("http_server_active_requests{http_request_method=\"POST\"} 1")
        })
        .await;
    tokio::task::spawn_blocking(move || server.terminate()).await.expect("stop");
    let done = in_flight.await.expect("call");
    assert_eq!(done["code"], "OK", "the call in flight finished across GOAWAY: {done}");
    let _second = GrpcServer::start_on(port, &[]);
    let after = call_async(target.clone(), args(&["unary", "again"])).await;
    assert_eq!(after["code"], "OK", "a new connection for the new server: {after}");

    // A server killed mid-stream: the client reads UNAVAILABLE, not a hang or a reset.
    let stream = tokio::spawn(call_async(target.clone(), args(&["server-stream", "100000", "65536"])));
    sidecar
        .metrics_until("the stream in flight", |m| {
            m.contains("http_server_active_requests{http_request_method=\"POST\"} 1")
        })
        .await;
    tokio::task::spawn_blocking(move || _second.kill()).await.expect("kill");
    let cut = stream.await.expect("call");
    assert_eq!(cut["code"], "UNAVAILABLE", "{cut}");
    let m = sidecar
        .metrics_until("the cut stream", |m| rpc_count(m, "redline.test.Echo/ServerStream", "UNAVAILABLE", true) == 1.0)
        .await;
    assert!(m.contains("error_type=\"upstream_error\""), "{m}");
}

#[tokio::test]
async fn an_upstream_that_does_not_speak_http2_gets_clean_errors() {
    // An HTTP/1.1-only upstream with `upstream_protocol: http2`: it answers the HTTP/2 preface
    // as the bad HTTP/1.1 request it is, as nginx or a plain HTTP/1.1 server would.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http1_only = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ =
                    s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            });
        }
    });
    let sidecar = Sidecar::start(&format!("http://{http1_only}"), &["--upstream-protocol", "http2"]).await;
    let failed = call_async(sidecar.proxy.to_string(), args(&["unary", "x"])).await;
    assert_eq!(failed["code"], "UNAVAILABLE", "{failed}");
    let r = client().get(sidecar.url("/users/1")).send().await.expect("GET");
    assert_eq!(r.status(), 502, "an HTTP/1.1 client gets a 502");
    // The method the service should have served is named, as the path of an HTTP 502 is.
    let m =
        sidecar.metrics_until("both", |m| rpc_count(m, "redline.test.Echo/Unary", "UNAVAILABLE", true) == 1.0).await;
    assert!(m.contains("http_response_status_code=\"502\",error_type=\"upstream_error\""), "{m}");

    // No service listening at all.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let nobody = closed.local_addr().expect("addr");
    drop(closed);
    let sidecar = Sidecar::start(&format!("http://{nobody}"), &[]).await;
    let refused = call_async(sidecar.proxy.to_string(), args(&["unary", "x"])).await;
    assert_eq!(refused["code"], "UNAVAILABLE", "{refused}");
    let m = sidecar
        .metrics_until("the call", |m| rpc_count(m, "redline.test.Echo/Unary", "UNAVAILABLE", true) == 1.0)
        .await;
    assert!(m.contains("http_response_status_code=\"200\",error_type=\"connection_refused\""), "{m}");

    // An upstream that answers the HTTP/2 preface with garbage frames.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                // A frame header claiming 16 MB of an unknown type on stream 0, then noise.
                let _ = s.write_all(&[0xff, 0xff, 0xff, 0x04, 0xff, 0, 0, 0, 0, 1, 2, 3]).await;
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let sidecar = Sidecar::start(&format!("http://{addr}"), &["--upstream-protocol", "http2"]).await;
    let failed = call_async(sidecar.proxy.to_string(), args(&["unary", "x"])).await;
    assert_eq!(failed["code"], "UNAVAILABLE", "{failed}");
}

/// An HTTP/2 upstream made by hand: every call answers one message, then `trailers` (or, with
/// none, resets the stream: hyper sends RST_STREAM for a body that fails).
async fn h2_upstream(trailers: &'static [(&'static str, &'static str)]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(move |_req: Request<hyper::body::Incoming>| async move {
                let mut t = HeaderMap::new();
                for (k, v) in trailers {
                    t.insert(*k, v.parse().expect("value"));
                }
                let end = match t.is_empty() {
                    true => Err(std::io::Error::other("reset")),
                    false => Ok(Frame::trailers(t)),
                };
                let frames: Vec<Result<Frame<Bytes>, std::io::Error>> =
                    vec![Ok(Frame::data(grpc_frame(b"partial"))), end];
                let body = StreamBody::new(futures_util::stream::iter(frames));
                Ok::<_, std::convert::Infallible>(
                    Response::builder().header("content-type", "application/grpc").body(body).expect("response"),
                )
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test]
async fn a_grpc_status_that_is_not_a_number_is_unknown_and_a_missing_one_is_counted_too() {
    let addr = h2_upstream(&[("grpc-status", "not-a-number"), ("grpc-message", "weird")]).await;
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]).await;
    let odd = call_async(sidecar.proxy.to_string(), args(&["raw", "/shop.Cart/Add", "x"])).await;
    assert_eq!(
        (odd["code"].as_str(), odd["details"].as_str()),
        (Some("UNKNOWN"), Some("the upstream sent a grpc-status that is not a status code")),
        "the client reads what is counted: {odd}"
    );
    let m = sidecar.metrics_until("the call", |m| rpc_count(m, "shop.Cart/Add", "UNKNOWN", true) == 1.0).await;
    assert!(m.contains("error_type=\"UNKNOWN\""), "{m}");

    // Trailers without grpc-status at all.
    let addr = h2_upstream(&[("x-other", "1")]).await;
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]).await;
    let missing = call_async(sidecar.proxy.to_string(), args(&["raw", "/shop.Cart/Add", "x"])).await;
    assert_eq!(missing["code"], "UNKNOWN", "{missing}");
    sidecar.metrics_until("the call", |m| rpc_count(m, "shop.Cart/Add", "UNKNOWN", true) == 1.0).await;

    // A stream the upstream resets after a message: the client reads UNAVAILABLE.
    let addr = h2_upstream(&[]).await;
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]).await;
    let reset = call_async(sidecar.proxy.to_string(), args(&["raw", "/shop.Cart/Add", "x"])).await;
    assert_eq!(reset["code"], "UNAVAILABLE", "{reset}");
    let m = sidecar.metrics_until("the call", |m| rpc_count(m, "shop.Cart/Add", "UNAVAILABLE", true) == 1.0).await;
    assert!(m.contains("error_type=\"upstream_error\""), "{m}");
}

#[tokio::test]
async fn malformed_frames_and_resets_from_clients_end_only_their_own_streams() {
    let server = GrpcServer::start(&[]);
    let sidecar = sidecar_for(&server, &[]).await;

    // The HTTP/2 preface, then a frame that is no frame: the connection ends, the sidecar goes on.
    let mut raw = TcpStream::connect(sidecar.proxy).await.expect("connect");
    raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.expect("preface");
    raw.write_all(&[0, 0, 4, 0x04, 0, 0, 0, 0, 7, 1, 2, 3, 4]).await.expect("bad SETTINGS on stream 7");
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the sidecar closes a connection that breaks the protocol");

    // A client that resets its stream mid-upload.
    let stream = TcpStream::connect(sidecar.proxy).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("h2");
    let conn = tokio::spawn(conn);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let body = StreamBody::new(Box::pin(tokio_stream_from(rx)));
    let mut req = Request::post(format!("http://{}/redline.test.Echo/ClientStream", sidecar.proxy));
    for (k, v) in GRPC_HEADERS {
        req = req.header(k, v);
    }
    let pending = tokio::spawn(send.send_request(req.body(body).expect("request")));
    tx.send(Ok(Frame::data(grpc_frame(b"first")))).await.expect("send");
    sidecar
        .metrics_until("the upload in flight", |m| {
            m.contains("http_server_active_requests{http_request_method=\"POST\"} 1")
        })
        .await;
    tx.send(Err(std::io::Error::other("client gives up"))).await.expect("send");
    let _ = pending.await;
    conn.abort();
    let m = sidecar
        .metrics_until("the reset call", |m| m.contains("http_server_active_requests{http_request_method=\"POST\"} 0"))
        .await;
    assert!(m.contains("rpc_response_status_code=\"CANCELLED\""), "a client's reset is CANCELLED: {m}");
    assert!(!m.contains("error_type=\"UNAVAILABLE\""), "and not the service's error: {m}");

    // Calls still pass.
    assert_eq!(call_async(sidecar.proxy.to_string(), args(&["unary", "still"])).await["code"], "OK");
}

/// A stream of the frames sent on `rx`.
fn tokio_stream_from<T>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

#[tokio::test]
async fn readyz_can_ask_the_standard_grpc_health_service() {
    let serving = GrpcServer::start(&[]);
    let sidecar = sidecar_for(&serving, &["--upstream-health-check", "grpc"]).await;
    let r = client().get(sidecar.admin_url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    let not_serving = GrpcServer::start(&["--health", "NOT_SERVING"]);
    let sidecar = sidecar_for(&not_serving, &["--upstream-health-check", "grpc"]).await;
    let r = client().get(sidecar.admin_url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 503);
    assert!(r.text().await.expect("body").contains("NOT_SERVING"));
    // One service of it still serves.
    let sidecar = sidecar_for(&not_serving, &["--upstream-health-check", "grpc:redline.test.Echo"]).await;
    let r = client().get(sidecar.admin_url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let sidecar = sidecar_for(&not_serving, &["--upstream-health-check", "grpc:no.Such"]).await;
    let r = client().get(sidecar.admin_url("/readyz")).send().await.expect("readyz");
    assert_eq!(r.status(), 503);
    assert!(r.text().await.expect("body").contains("NOT_FOUND"), "the health service's own answer");
}

/// An HTTP/1.1 upstream made by hand that reads a chunked request with trailers and answers
/// a chunked body with its own, one request per connection (it says `Connection: close`, so
/// that no later request finds the connection pooled as it closes); it reports the request bytes it read.
async fn chunked_trailer_upstream() -> (SocketAddr, tokio::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen_tx, seen_rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // A request ends at the blank line after its last chunk (or its head, without a body).
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got);
                    let chunked = text.to_ascii_lowercase().contains("transfer-encoding: chunked");
                    if (chunked && text.contains("\r\n0\r\n") && text.ends_with("\r\n\r\n"))
                        || (!chunked && text.contains("\r\n\r\n"))
                    {
                        break;
                    }
                }
                let _ = seen_tx.send(String::from_utf8_lossy(&got).into_owned()).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n\
                          5\r\nhello\r\n0\r\nx-sum: 42\r\n\r\n",
                    )
                    .await;
                let _ = s.read(&mut buf).await;
            });
        }
    });
    (addr, seen_rx)
}

#[tokio::test]
async fn http1_chunked_trailers_pass_both_ways_and_to_http2_clients() {
    let (addr, mut seen) = chunked_trailer_upstream().await;
    let sidecar = Sidecar::start(&format!("http://{addr}"), &["--upstream-protocol", "http1"]).await;

    // HTTP/1.1 both sides: the client's trailer goes up, the upstream's comes down.
    let mut raw = TcpStream::connect(sidecar.proxy).await.expect("connect");
    raw.write_all(
        b"POST /upload HTTP/1.1\r\nHost: svc\r\nTE: trailers\r\nTrailer: x-client-sum\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\nx-client-sum: 7\r\n\r\n",
    )
    .await
    .expect("request");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).ends_with("\r\n\r\n") || !String::from_utf8_lossy(&answer).contains("x-sum")
    {
        let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.contains("\r\n0\r\nx-sum: 42\r\n\r\n"), "the upstream's trailer reaches the client: {answer}");
    let upstream_saw = seen.recv().await.expect("request seen").to_ascii_lowercase();
    assert!(
        upstream_saw.contains("\r\n0\r\nx-client-sum: 7\r\n\r\n"),
        "the client's trailer reaches the upstream: {upstream_saw}"
    );
    assert!(upstream_saw.contains("te: trailers"), "{upstream_saw}");

    // An HTTP/2 client of an HTTP/1.1 upstream gets the trailer as an HTTP/2 trailer section.
    let a = h2_post(sidecar.proxy, "/upload", &[("te", "trailers")], Bytes::from_static(b"abc")).await;
    assert_eq!((a.status, &a.body[..]), (200, &b"hello"[..]));
    assert_eq!(a.trailers.expect("trailers")["x-sum"], "42");
}

#[tokio::test]
async fn concurrent_calls_share_one_multiplexed_upstream_connection() {
    let server = GrpcServer::start(&[]);
    let sidecar = sidecar_for(&server, &["--workers", "1"]).await;
    // 40 calls at once on one client connection, each held 300ms by the service.
    let stream = TcpStream::connect(sidecar.proxy).await.expect("connect");
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("h2");
    let conn = tokio::spawn(conn);
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let mut send = send.clone();
            let mut req = Request::post(format!("http://{}/redline.test.Echo/Sleep", sidecar.proxy));
            for (k, v) in GRPC_HEADERS {
                req = req.header(k, v);
            }
            let req = req.body(Full::new(grpc_frame(b"300"))).expect("request");
            tokio::spawn(async move {
                let resp = send.send_request(req).await.expect("head");
                let body = resp.into_body().collect().await.expect("body");
                body.trailers().and_then(|t| t.get("grpc-status")).map(|v| v.as_bytes().to_vec())
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("call").as_deref(), Some(&b"0"[..]), "every call is OK");
    }
    conn.abort();
    let m = sidecar.metrics_until("40 calls", |m| rpc_count(m, "redline.test.Echo/Sleep", "OK", false) == 40.0).await;
    let open = sample(&m, "redline_upstream_connections{state=\"active\"}").unwrap_or(0.0)
        + sample(&m, "redline_upstream_connections{state=\"idle\"}").unwrap_or(0.0);
    assert_eq!(open, 1.0, "40 concurrent calls are streams of one upstream connection: {m}");
}

#[tokio::test]
async fn an_http2_upstream_that_stops_reading_a_body_is_the_upstreams_timeout_not_the_clients() {
    // An HTTP/2 upstream that takes the request head and never reads the body or answers: its
    // flow-control window fills and the sidecar's sender stops, which is the upstream's fault.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                let _hold = req; // never read
                std::future::pending::<Result<Response<Full<Bytes>>, std::convert::Infallible>>().await
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .initial_stream_window_size(65_535)
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    let sidecar = Sidecar::start(&format!("http://{addr}"), &["--stream-idle-timeout", "300ms"]).await;
    let stream = TcpStream::connect(sidecar.proxy).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("h2");
    let conn = tokio::spawn(conn);
    // 4 MB offered at once: far more than the upstream's window and the sidecar's own.
    let req = Request::post(format!("http://{}/upload", sidecar.proxy))
        .body(Full::new(Bytes::from(vec![7u8; 4 << 20])))
        .expect("request");
    let t = Instant::now();
    let resp =
        tokio::time::timeout(Duration::from_secs(10), send.send_request(req)).await.expect("an answer").expect("head");
    assert_eq!(resp.status(), 504, "the upstream stopped reading: its timeout ({:?})", t.elapsed());
    conn.abort();
    let m = sidecar.metrics_until("the timeout", |m| m.contains("error_type=\"timeout\"")).await;
    assert!(!m.contains("client_timeout"), "the client kept sending: not its fault: {m}");
}

#[tokio::test]
async fn an_http_status_other_than_200_on_a_grpc_call_maps_as_grpc_specifies() {
    // An HTTP/2 upstream (a misconfigured gateway, say) answering 503 with no gRPC status.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async move {
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .status(503)
                        .body(Full::new(Bytes::from_static(b"overloaded")))
                        .expect("response"),
                )
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]).await;
    let answer = call_async(sidecar.proxy.to_string(), args(&["raw", "/shop.Cart/Add", "x"])).await;
    assert_eq!(answer["code"], "UNAVAILABLE", "503 is UNAVAILABLE in gRPC's mapping: {answer}");
    let m = sidecar.metrics_until("the call", |m| rpc_count(m, "shop.Cart/Add", "UNAVAILABLE", true) == 1.0).await;
    assert!(m.contains("http_response_status_code=\"503\",error_type=\"503\""), "the HTTP view keeps the 503: {m}");
}
