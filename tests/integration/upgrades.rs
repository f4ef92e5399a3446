//! Protocol upgrades through the sidecar: a real WebSocket client and server (tungstenite) talk
//! across it, an upstream that declines keeps the connection HTTP, and `h2c` is never passed on.

use crate::common;

use std::sync::{Arc, Mutex};

use common::{Sidecar, sample};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// A WebSocket echo server; keeps the handshake headers of every connection it accepted.
async fn websocket_echo_upstream() -> (String, Arc<Mutex<Vec<Vec<(String, String)>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let url = format!("http://{}", listener.local_addr().expect("upstream address"));
    let handshakes = Arc::new(Mutex::new(Vec::new()));
    let seen = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)] // the signature tungstenite's callback must have
                let record = |req: &Request, resp: Response| {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    seen.lock().expect("handshakes lock").push(headers);
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(conn, record).await else { return };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                    if ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (url, handshakes)
}

#[tokio::test]
async fn websocket_messages_cross_the_sidecar_both_ways() {
    let (upstream, handshakes) = websocket_echo_upstream().await;
    let sc = Sidecar::start(&upstream, &["--routes", "/chat/{room}"]).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/chat/lobby", sc.proxy))
        .await
        .expect("the WebSocket handshake succeeds through the sidecar");
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["upgrade"].to_str().ok().map(str::to_ascii_lowercase).as_deref(), Some("websocket"));

    ws.send(Message::text("hello through redline")).await.expect("send text");
    let echoed = ws.next().await.expect("an answer").expect("a message");
    assert_eq!(echoed.into_text().expect("text").as_str(), "hello through redline");
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.expect("send 2 MB");
    let echoed = ws.next().await.expect("an answer").expect("a message");
    assert!(echoed.into_data() == big, "2 MB of binary frames come back intact");

    // While the tunnel is open its upstream connection counts as active.
    let m = sc.metrics().await;
    assert_eq!(sample(&m, "redline_upstream_connections{state=\"active\"}"), Some(1.0), "{m}");
    assert_eq!(
        sample(
            &m,
            "http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/chat/{room}\",http_response_status_code=\"101\"}"
        ),
        Some(1.0),
        "the handshake is one request, answered 101: {m}"
    );

    ws.close(None).await.expect("close handshake");
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    sc.metrics_until("the tunnel's upstream connection is closed", |m| {
        sample(m, "redline_upstream_connections{state=\"active\"}") == Some(0.0)
            && sample(m, "redline_upstream_connections{state=\"idle\"}") == Some(0.0)
    })
    .await;

    let handshake = handshakes.lock().expect("handshakes lock")[0].clone();
    let header = |name: &str| handshake.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(header("connection").as_deref(), Some("upgrade"));
    assert_eq!(header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert!(header("traceparent").is_some(), "the handshake carries the trace context: {handshake:?}");
    assert!(header("sec-websocket-key").is_some(), "end-to-end handshake fields are passed on: {handshake:?}");

    let status = "\"http.response.status_code\":101";
    let logs = sc.stdout_until("the handshake's access line", |l| l.contains(status)).await;
    let line = logs.lines().find(|l| l.contains(status)).expect("access line");
    let line: serde_json::Value = serde_json::from_str(line).expect("JSON access line");
    assert_eq!(line["http.route"], "/chat/{room}", "{line}");
    assert_eq!(line["url.path"], "/chat/lobby", "{line}");
}

/// Sends `head` on a new connection to the sidecar and reads until the response head ends.
async fn raw_exchange(sc: &Sidecar, head: &str) -> (TcpStream, String) {
    let mut conn = TcpStream::connect(sc.proxy).await.expect("connect to the sidecar");
    conn.write_all(head.as_bytes()).await.expect("send request head");
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.expect("read response");
        assert!(n > 0, "the sidecar closed before a response head: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    (conn, String::from_utf8_lossy(&got).into_owned())
}

/// An upstream that answers every request with `answer` and records the request heads.
async fn http_upstream(answer: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let url = format!("http://{}", listener.local_addr().expect("upstream address"));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.lock().expect("heads lock").push(String::from_utf8_lossy(&buf[..end]).into_owned());
                        buf.drain(..end + 4);
                        if conn.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (url, heads)
}

#[tokio::test]
async fn an_upstream_that_declines_the_upgrade_answers_over_plain_http() {
    let (upstream, heads) = http_upstream("HTTP/1.1 426 Upgrade Required\r\ncontent-length: 4\r\n\r\nnope").await;
    let sc = Sidecar::start(&upstream, &[]).await;
    let ask = "GET /ws HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let (mut conn, head) = raw_exchange(&sc, ask).await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    // The connection stays HTTP: a second request on it is answered as one.
    conn.write_all(b"GET /again HTTP/1.1\r\nHost: svc\r\n\r\n").await.expect("second request");
    let mut rest = Vec::new();
    while rest.windows(12).filter(|w| w == b"HTTP/1.1 426").count() < 1 {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.expect("read second response");
        assert!(n > 0, "the connection was closed after a declined upgrade");
        rest.extend_from_slice(&chunk[..n]);
    }
    let heads = heads.lock().expect("heads lock").clone();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(heads[0].to_ascii_lowercase().contains("upgrade: websocket"), "{}", heads[0]);
    assert!(!heads[1].to_ascii_lowercase().contains("upgrade"), "{}", heads[1]);
}

#[tokio::test]
async fn h2c_upgrade_requests_are_served_as_plain_http_1_1() {
    let (upstream, heads) = http_upstream("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let sc = Sidecar::start(&upstream, &[]).await;
    let ask = "GET /h2 HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
    let (_conn, head) = raw_exchange(&sc, ask).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = heads.lock().expect("heads lock")[0].to_ascii_lowercase();
    assert!(!seen.contains("upgrade") && !seen.contains("http2-settings"), "{seen}");
}

#[tokio::test]
async fn a_tunnel_holds_its_connection_slot_until_it_closes() {
    let (upstream, _) = websocket_echo_upstream().await;
    let sc = Sidecar::start(&upstream, &["--max-connections", "1", "--workers", "1"]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/chat/a", sc.proxy)).await.expect("handshake");
    ws.send(Message::text("still here")).await.expect("send");
    assert_eq!(ws.next().await.expect("answer").expect("message").into_text().expect("text").as_str(), "still here");

    // The tunnel has the only slot: another client waits in the kernel backlog, unserved.
    let mut waiting = TcpStream::connect(sc.proxy).await.expect("connect");
    waiting.write_all(b"GET /plain HTTP/1.1\r\nHost: svc\r\n\r\n").await.expect("send request");
    let mut first = [0u8; 1];
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), waiting.read(&mut first)).await;
    assert!(early.is_err(), "a second connection was served while the tunnel held the only slot");

    // Once the tunnel closes, the waiting client is accepted and answered.
    drop(ws);
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), waiting.read(&mut first))
        .await
        .expect("the waiting client is served once the tunnel closed")
        .expect("read");
    assert_eq!((n, first[0]), (1, b'H'), "an HTTP answer");
}

#[tokio::test]
async fn an_open_tunnel_keeps_working_through_the_drain_and_its_close_ends_it() {
    let (upstream, _) = websocket_echo_upstream().await;
    let mut sc = Sidecar::start(&upstream, &["--drain-timeout", "20s"]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/chat/a", sc.proxy)).await.expect("handshake");
    sc.signal(nix::sys::signal::Signal::SIGTERM);
    sc.stdout_until("the drain to start", |l| l.contains("shutdown requested")).await;

    // Draining: no new clients, but the open tunnel still carries messages both ways.
    ws.send(Message::text("during the drain")).await.expect("send while draining");
    let echoed = ws.next().await.expect("an answer").expect("a message");
    assert_eq!(echoed.into_text().expect("text").as_str(), "during the drain");

    // Closing the tunnel is what ends the drain, well before the 20 s timeout.
    ws.close(None).await.expect("close handshake");
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    let status = sc.wait_exit(std::time::Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    let logs = sc.stdout();
    assert!(logs.contains("drained; exiting"), "the drain completed instead of timing out:\n{logs}");
}
