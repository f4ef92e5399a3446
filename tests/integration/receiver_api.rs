//! `redline receiver` over real sockets, against SQLite and a real PostgreSQL: ingest, query
//! API, idempotency, bad input (status, message naming the field, nothing half-stored), gates.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::receiver::{Backend, Receiver, TOKEN, TestStore, ZERO_TIME, on_both_stores, webhook, webhook_alert};
use common::{client, redline_bin, report_check, sample};
use serde_json::{Value, json};

on_both_stores!(
    ingest_query_history_and_gates,
    bad_input_is_refused_and_nothing_is_half_stored,
    large_payloads_are_all_or_nothing
);

fn checkout_critical(alertname: &str) -> Value {
    json!({"alertname": alertname, "service": "checkout", "namespace": "shop", "version": "2.0", "severity": "critical"})
}

async fn flagger(r: &Receiver, hook: &str, body: Value) -> (u16, String) {
    let resp = client().post(r.url(&format!("/api/v1/flagger/{hook}"))).json(&body).send().await.expect("flagger hook");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

fn canary() -> Value {
    json!({"name": "checkout", "namespace": "shop", "phase": "Progressing", "checksum": "abc", "metadata": {"version": "2.0"}})
}

async fn ingest_query_history_and_gates(backend: Backend) {
    let store = TestStore::new(backend);
    let r = Receiver::start(&store.db, &[]).await;

    // Nothing firing: promotion confirmed, no rollback, ready.
    assert_eq!(flagger(&r, "confirm-promotion", canary()).await.0, 200);
    assert_eq!(flagger(&r, "rollback", canary()).await.0, 403);

    let starts = "2024-05-01T10:00:00.5Z";
    let firing = webhook(
        "firing",
        "{}:{alertname=\"HighErrorRatio\"}",
        vec![
            webhook_alert("firing", &checkout_critical("HighErrorRatio"), starts, ZERO_TIME),
            webhook_alert(
                "firing",
                &json!({"alertname": "Slow", "service": "cart", "severity": "warning"}),
                starts,
                ZERO_TIME,
            ),
        ],
    );
    let resp = r.post("/api/v1/alertmanager", firing.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.expect("json")["status"], "stored");
    // Alertmanager's retry of the same notification is acknowledged and stored once.
    let resp = r.post("/api/v1/alertmanager", firing.to_string()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.expect("json")["status"], "duplicate");

    let all = r.alerts("").await;
    assert_eq!(all.len(), 2, "{all:?}");
    let mine = r.alerts("service=checkout&state=firing").await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    let a = &mine[0];
    assert_eq!(a["state"], "firing");
    assert_eq!(a["labels"]["alertname"], "HighErrorRatio");
    assert_eq!(a["annotations"]["summary"], "something users feel");
    assert_eq!(a["startsAt"], "2024-05-01T10:00:00.5Z");
    assert_eq!(a["endsAt"], Value::Null);
    assert_eq!(a["notifications"], 1);
    assert!(a["lastNotifiedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let fp = a["fingerprint"].as_str().expect("fingerprint").to_string();
    assert!(r.alerts("service=checkout&state=resolved").await.is_empty());
    assert!(r.alerts("since=2200-01-01T00:00:00Z").await.is_empty());
    assert_eq!(r.alerts("since=1h").await.len(), 2);

    // Gates while the critical alert fires.
    let (status, body) = flagger(&r, "confirm-promotion", canary()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("HighErrorRatio") && body.contains(&fp), "{body}");
    let (status, body) = flagger(&r, "rollback", canary()).await;
    assert_eq!(status, 200, "{body}");
    // Another version's canary is not blocked by an alert labelled version 2.0.
    let other = json!({"name": "checkout", "namespace": "shop", "metadata": {"version": "3.0"}});
    assert_eq!(flagger(&r, "confirm-promotion", other).await.0, 200);
    let ready = r.get_json("/api/v1/readiness/checkout").await;
    assert_eq!(ready["ready"], false, "{ready}");
    assert_eq!(report_check(&ready, "alerts.firing")["status"], "fail");
    assert_eq!(
        report_check(&ready, "tests.coverage")["status"],
        "skip",
        "no readiness config: only alerts.firing runs"
    );
    assert!(
        report_check(&ready, "canary")["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("no readiness config for service")),
        "{ready}"
    );
    assert!(ready["reasons"][0].as_str().is_some_and(|s| s.contains("HighErrorRatio")), "{ready}");
    assert_eq!(r.get_json("/api/v1/readiness/cart").await["ready"], true, "warnings do not block");

    // The CLI reads the same API.
    let out = Command::new(redline_bin())
        .args(["alerts", "list", "--receiver", &r.base_url(), "--service", "checkout", "--format", "json"])
        .env("REDLINE_RECEIVER_BEARER_TOKEN_FILE", &r.token_file)
        .output()
        .expect("run redline alerts list");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["fingerprint"], fp.as_str());
    let out = Command::new(redline_bin())
        .args(["alerts", "list", "--receiver", &r.base_url(), "--state", "firing"])
        .env("REDLINE_RECEIVER_BEARER_TOKEN_FILE", &r.token_file)
        .output()
        .expect("run redline alerts list");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("STATE"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains("HighErrorRatio") && table.contains("Slow"), "{table}");
    let out = Command::new(redline_bin())
        .args(["alerts", "list", "--receiver", &r.base_url()])
        .env_remove("REDLINE_RECEIVER_BEARER_TOKEN_FILE")
        .output()
        .expect("run redline alerts list");
    assert_eq!(out.status.code(), Some(2), "an error, not a verdict");
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));

    // Resolved: the gates open again and the history shows both notifications, oldest first.
    let resolved = webhook(
        "resolved",
        "{}:{alertname=\"HighErrorRatio\"}",
        vec![webhook_alert("resolved", &checkout_critical("HighErrorRatio"), starts, "2024-05-01T10:30:00Z")],
    );
    assert_eq!(r.post("/api/v1/alertmanager", resolved.to_string()).await.status(), 200);
    let mine = r.alerts("service=checkout").await;
    assert_eq!(mine[0]["state"], "resolved");
    assert_eq!(mine[0]["endsAt"], "2024-05-01T10:30:00Z");
    assert_eq!(mine[0]["notifications"], 2);
    let (status, body) = flagger(&r, "confirm-promotion", canary()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(flagger(&r, "rollback", canary()).await.0, 403);
    assert_eq!(r.get_json("/api/v1/readiness/checkout?namespace=shop").await["ready"], true);
    let history = r.get_json(&format!("/api/v1/alerts/{fp}/history")).await;
    let n = history["notifications"].as_array().expect("notifications");
    assert_eq!(n.len(), 2, "{history}");
    assert_eq!(n[0]["status"], "firing");
    assert_eq!(n[1]["status"], "resolved");
    assert_eq!(n[1]["receiver"], "redline");
    assert_eq!(n[0]["source"], "webhook");
    let missing = client().get(r.url("/api/v1/alerts/ffffffffffffffff/history")).bearer_auth(TOKEN).send().await;
    assert_eq!(missing.expect("GET").status(), 404);

    // An older notification arriving late (a retry) does not overwrite the newer state.
    let late = webhook(
        "firing",
        "{}:{alertname=\"HighErrorRatio\"}/late",
        vec![webhook_alert("firing", &checkout_critical("HighErrorRatio"), "2024-05-01T09:00:00Z", ZERO_TIME)],
    );
    assert_eq!(r.post("/api/v1/alertmanager", late.to_string()).await.status(), 200);
    assert_eq!(r.alerts("service=checkout").await[0]["state"], "resolved");

    // The v2 alert API: fingerprints computed from the label set; no endsAt = firing.
    let v2 = json!([{"labels": {"alertname": "Direct", "service": "checkout", "severity": "critical"},
                     "annotations": {"summary": "from the sidecar"}, "generatorURL": "http://sidecar/rules"}]);
    let resp = r.post("/api/v2/alerts", v2.to_string()).await;
    assert_eq!(resp.status(), 200);
    let direct = r.alerts("service=checkout&state=firing").await;
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0]["labels"]["alertname"], "Direct");
    assert_eq!(
        direct[0]["fingerprint"],
        redline::receiver::payload::fingerprint(
            &[("alertname", "Direct"), ("service", "checkout"), ("severity", "critical")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        )
    );
    assert_eq!(flagger(&r, "confirm-promotion", canary()).await.0, 403);

    let m = r.metrics().await;
    assert_eq!(sample(&m, "redline_receiver_notifications_received_total"), Some(5.0), "{m}");
    assert_eq!(sample(&m, "redline_receiver_notifications_stored_total"), Some(4.0), "{m}");
    assert_eq!(sample(&m, "redline_receiver_notifications_duplicates_total"), Some(1.0), "{m}");
    assert!(sample(&m, "redline_receiver_commit_duration_seconds_count").is_some_and(|n| n >= 1.0), "{m}");
    // Secrets never reach the logs.
    assert!(!r.stdout().contains(TOKEN));
}

async fn bad_input_is_refused_and_nothing_is_half_stored(backend: Backend) {
    let store = TestStore::new(backend);
    let r = Receiver::start(&store.db, &["--max-body", "64KiB"]).await;
    let good = webhook(
        "firing",
        "g",
        vec![webhook_alert("firing", &json!({"alertname": "A", "service": "s"}), "2024-05-01T10:00:00Z", ZERO_TIME)],
    );
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v.to_string()
    };
    let big = "x".repeat(70 * 1024);
    struct Case {
        what: &'static str,
        path: &'static str,
        auth: Option<String>,
        body: String,
        status: u16,
        message: &'static str,
    }
    let bearer = Some(format!("Bearer {TOKEN}"));
    let cases = vec![
        Case {
            what: "no credentials",
            path: "/api/v1/alertmanager",
            auth: None,
            body: good.to_string(),
            status: 401,
            message: "credentials",
        },
        Case {
            what: "wrong token",
            path: "/api/v1/alertmanager",
            auth: Some("Bearer nope".into()),
            body: good.to_string(),
            status: 401,
            message: "credentials",
        },
        Case {
            what: "basic instead of bearer",
            path: "/api/v1/alertmanager",
            auth: Some(format!("Basic {TOKEN}")),
            body: good.to_string(),
            status: 401,
            message: "credentials",
        },
        Case {
            what: "v2 without credentials",
            path: "/api/v2/alerts",
            auth: None,
            body: "[]".into(),
            status: 401,
            message: "credentials",
        },
        Case {
            what: "not JSON",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: "<xml/>".into(),
            status: 400,
            message: "body is not valid JSON",
        },
        Case {
            what: "truncated JSON",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: good.to_string()[..40].into(),
            status: 400,
            message: "body is not valid JSON",
        },
        Case {
            what: "wrong version",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: with(&|v| v["version"] = json!("3")),
            status: 400,
            message: "version: expected \"4\", got \"3\"",
        },
        Case {
            what: "missing receiver",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: with(&|v| {
                v.as_object_mut().map(|o| o.remove("receiver"));
            }),
            status: 400,
            message: "missing field `receiver`",
        },
        Case {
            what: "missing alerts",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: with(&|v| {
                v.as_object_mut().map(|o| o.remove("alerts"));
            }),
            status: 400,
            message: "missing field `alerts`",
        },
        Case {
            what: "alerts not a list",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: with(&|v| v["alerts"] = json!({})),
            status: 400,
            message: "alerts: invalid type: object, expected an array",
        },
        Case {
            what: "bad group status",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: with(&|v| v["status"] = json!("burning")),
            status: 400,
            message: "status: unknown variant `burning`",
        },
        Case {
            what: "bad startsAt",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: with(&|v| v["alerts"][0]["startsAt"] = json!("yesterday")),
            status: 400,
            message: "alerts[0].startsAt: expected an RFC 3339 timestamp",
        },
        Case {
            what: "label value not a string",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: with(&|v| v["alerts"][0]["labels"]["service"] = json!(7)),
            status: 400,
            message: "alerts[0].labels.service: invalid type: integer `7`, expected a string",
        },
        Case {
            what: "missing labels",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: with(&|v| {
                v["alerts"][0].as_object_mut().map(|o| o.remove("labels"));
            }),
            status: 400,
            message: "alerts[0]: missing field `labels`",
        },
        Case {
            what: "endsAt before startsAt",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: with(&|v| v["alerts"][0]["endsAt"] = json!("2020-01-01T00:00:00Z")),
            status: 400,
            message: "alerts[0].endsAt: is before startsAt",
        },
        Case {
            what: "oversized",
            path: "/api/v1/alertmanager",
            auth: bearer.clone(),
            body: with(&|v| v["alerts"][0]["annotations"]["big"] = json!(big)),
            status: 413,
            message: "--max-body (65536 bytes)",
        },
        Case {
            what: "v2 not a list",
            path: "/api/v2/alerts",
            auth: bearer.clone(),
            body: good.to_string(),
            status: 400,
            message: "body must be a JSON array of alerts (Alertmanager API v2 PostableAlerts), got an object",
        },
        Case {
            what: "v2 bad endsAt",
            path: "/api/v2/alerts",
            auth: bearer.clone(),
            body: r#"[{"labels":{"a":"b"},"endsAt":"soon"}]"#.into(),
            status: 400,
            message: "[0].endsAt: expected an RFC 3339 timestamp, got \"soon\"",
        },
        Case {
            what: "v2 empty labels",
            path: "/api/v2/alerts",
            auth: bearer.clone(),
            body: r#"[{"labels":{}}]"#.into(),
            status: 400,
            message: "[0].labels: expected at least one label",
        },
    ];
    let mut by_reason = std::collections::BTreeMap::<&str, f64>::new();
    for c in &cases {
        let mut req = client().post(r.url(c.path)).header("content-type", "application/json").body(c.body.clone());
        if let Some(a) = &c.auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{}: {e}", c.what));
        let status = resp.status().as_u16();
        let challenge = resp.headers().get("www-authenticate").cloned();
        let body = resp.text().await.expect("body");
        assert_eq!(status, c.status, "{}: {body}", c.what);
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{}: error body is not JSON: {body}", c.what));
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.contains(c.message), "{}: {msg:?} does not contain {:?}", c.what, c.message);
        if status == 401 {
            assert_eq!(
                challenge.as_ref().and_then(|h| h.to_str().ok()),
                Some("Bearer realm=\"redline\""),
                "{}",
                c.what
            );
        }
        let reason = match status {
            401 => "unauthorized",
            413 => "too_large",
            _ => "invalid",
        };
        *by_reason.entry(reason).or_default() += 1.0;
    }
    // Queries need the credentials too.
    let resp = client().get(r.url("/api/v1/alerts")).send().await.expect("GET");
    assert_eq!(resp.status(), 401);
    let resp = client().get(r.url("/api/v1/alerts?state=on")).bearer_auth(TOKEN).send().await.expect("GET");
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.expect("body").contains("state: expected firing or resolved"));
    // Bad Flagger payloads are refused by name.
    let resp =
        client().post(r.url("/api/v1/flagger/rollback")).body(r#"{"namespace":"x"}"#).send().await.expect("POST");
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.expect("body").contains("missing field `name`"));

    assert!(r.alerts("").await.is_empty(), "a refused delivery left something behind");
    let m = r.metrics().await;
    for (reason, n) in by_reason {
        assert_eq!(
            sample(&m, &format!("redline_receiver_notifications_rejected_total{{reason=\"{reason}\"}}")),
            Some(n),
            "{m}"
        );
    }
    assert_eq!(sample(&m, "redline_receiver_notifications_stored_total"), Some(0.0));
    assert_eq!(sample(&m, "redline_receiver_notifications_received_total"), Some(cases.len() as f64));
    // The receiver is still fine and takes the good payload.
    assert_eq!(r.post("/api/v1/alertmanager", good.to_string()).await.status(), 200);
    assert_eq!(r.alerts("").await.len(), 1);
}

fn many_alerts(n: usize, bad_at: Option<usize>) -> String {
    let alerts: Vec<Value> = (0..n)
        .map(|i| {
            let starts = if Some(i) == bad_at { "not a time".to_string() } else { "2024-05-01T10:00:00Z".to_string() };
            webhook_alert(
                "firing",
                &json!({"alertname": "Many", "service": "bulk", "instance": format!("i-{i}")}),
                &starts,
                ZERO_TIME,
            )
        })
        .collect();
    webhook("firing", "bulk", alerts).to_string()
}

async fn large_payloads_are_all_or_nothing(backend: Backend) {
    let store = TestStore::new(backend);
    // 10k alerts are ~4 MB: over the default 1 MiB they are refused whole.
    let body = many_alerts(10_000, None);
    assert!(body.len() > 1 << 20);
    {
        let r = Receiver::start(&store.db, &[]).await;
        let resp = r.post("/api/v1/alertmanager", body.clone()).await;
        assert_eq!(resp.status(), 413);
        assert!(r.alerts("service=bulk").await.is_empty());
    }
    // With room for them they are accepted in one transaction; one bad alert refuses all.
    let r = Receiver::start(&store.db, &["--max-body", "16MiB"]).await;
    let bad = many_alerts(10_000, Some(9_999));
    let resp = r.post("/api/v1/alertmanager", bad).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.expect("body").contains("alerts[9999].startsAt"));
    assert!(r.alerts("service=bulk").await.is_empty());
    let resp = r.post("/api/v1/alertmanager", body.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(r.alerts("service=bulk").await.len(), 10_000);
    let resp = r.post("/api/v1/alertmanager", body).await;
    assert_eq!(resp.json::<Value>().await.expect("json")["status"], "duplicate");
    assert!(r.alerts("service=bulk").await.iter().all(|a| a["notifications"] == 1));
}

/// Sends `head`, then `body` in `piece`-sized writes (each a chunk when `chunked`), then reads
/// the whole answer. A receiver that closed with the body unread makes a write fail (broken
/// pipe) or the read end in a reset, whichever the kernel's timing gives: both are errors here.
async fn post_raw(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
    piece: usize,
    chunked: bool,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    conn.write_all(head.as_bytes()).await.map_err(|e| format!("writing the head: {e}"))?;
    for (i, part) in body.chunks(piece).enumerate() {
        let sent = if chunked {
            let framed = [format!("{:x}\r\n", part.len()).as_bytes(), part, b"\r\n"].concat();
            conn.write_all(&framed).await
        } else {
            conn.write_all(part).await
        };
        sent.map_err(|e| format!("writing piece {i} of the body: {e}"))?;
    }
    if chunked {
        conn.write_all(b"0\r\n\r\n").await.map_err(|e| format!("writing the last chunk: {e}"))?;
    }
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.map_err(|e| format!("reading the answer: {e}"))?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.unwrap_or_else(|_| panic!("{what}: no answer in 60s"))
}

/// A body refused unread (over `--max-body`, or with wrong credentials) is drained before the
/// connection closes, so the client reads the 413 or 401 rather than a reset. The body is 4x
/// the limit, far more than the receiver reads before answering, so a receiver that closed
/// without draining fails this every time, not by chance.
#[tokio::test]
async fn refused_bodies_are_drained_so_the_client_reads_the_answer() {
    let store = TestStore::new(Backend::Sqlite);
    let r = Receiver::start(&store.db, &["--max-body", "1MiB"]).await;
    let body = vec![b' '; 4 << 20];
    let head = |auth: &str, framing: &str| {
        format!(
            "POST /api/v1/alertmanager HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {auth}\r\n\
             Content-Type: application/json\r\n{framing}\r\n\r\n",
            r.addr
        )
    };
    let length = format!("Content-Length: {}", body.len());

    // A declared length over the limit is answered at once, before any of the body is sent...
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(r.addr).await.expect("connect");
        conn.write_all(head(TOKEN, &length).as_bytes()).await.expect("write the head");
        let mut early = Vec::new();
        while !early.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut piece = [0u8; 4096];
            let n = within("early 413", conn.read(&mut piece)).await.expect("read the early answer");
            assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&early));
            early.extend_from_slice(&piece[..n]);
        }
        let early = String::from_utf8_lossy(&early).into_owned();
        assert!(early.starts_with("HTTP/1.1 413"), "{early}");
        assert!(early.to_ascii_lowercase().contains("connection: close"), "{early}");
        // ...and the body sent after the answer is still read, then the connection closes cleanly.
        conn.write_all(&body).await.expect("the receiver reads the refused body instead of resetting");
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.expect("a clean close after the refused body, not a reset");
    }
    // The same body sent straight after the head: the 413 is read after the whole body was written.
    let answer = within("413, length", post_raw(r.addr, &head(TOKEN, &length), &body, 64 << 10, false)).await;
    let answer = answer.expect("413 with a declared length");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("--max-body (1048576 bytes)"), "{answer}");
    // Chunked, no declared length: refused once the limit is passed, the rest drained.
    let chunked = "Transfer-Encoding: chunked";
    let answer = within("413, chunked", post_raw(r.addr, &head(TOKEN, chunked), &body, 64 << 10, true)).await;
    let answer = answer.expect("413 with a chunked body");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Wrong credentials: the body is never read, and drained all the same.
    let answer = within("401", post_raw(r.addr, &head("wrong", &length), &body, 64 << 10, false)).await;
    let answer = answer.expect("401 with a large body");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    assert!(r.alerts("").await.is_empty());
    let m = r.metrics().await;
    let rejected =
        |reason: &str| sample(&m, &format!("redline_receiver_notifications_rejected_total{{reason=\"{reason}\"}}"));
    assert_eq!(rejected("too_large"), Some(3.0), "{m}");
    assert_eq!(rejected("unauthorized"), Some(1.0), "{m}");
}

#[tokio::test]
async fn refuses_a_non_loopback_address_without_credentials() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("r.db");
    let out = Command::new(redline_bin())
        .args(["receiver", "--listen", "0.0.0.0:0", "--db"])
        .arg(&db)
        .output()
        .expect("run redline receiver");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on a non-loopback address without credentials"), "{err}");
    assert!(err.contains("--insecure-no-auth"), "{err}");
    // A missing token file is a usage error naming the flag and path.
    let out = Command::new(redline_bin())
        .args(["receiver", "--listen", "127.0.0.1:0", "--bearer-token-file", "/nonexistent/token", "--db"])
        .arg(&db)
        .output()
        .expect("run redline receiver");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bearer-token-file /nonexistent/token: cannot read"));
}

#[tokio::test]
async fn readiness_config_problems_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("r.db").display().to_string();
    let out = Command::new(redline_bin())
        .args(["receiver", "--listen", "127.0.0.1:0", "--readiness-config", "/nonexistent/redline.yaml", "--db", &db])
        .output()
        .expect("run redline receiver");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--readiness-config /nonexistent/redline.yaml: cannot read"), "{err}");

    let configs = dir.path().join("configs");
    std::fs::create_dir(&configs).expect("mkdir");
    std::fs::write(configs.join("checkout.yaml"), "service: cart\n").expect("write");
    std::fs::write(configs.join("payments.yaml"), "service: payments\nreadiness: {coverage: {min: 180}}\n")
        .expect("write");
    let configs_arg = configs.display().to_string();
    let r = Receiver::start(&db, &["--readiness-config", &configs_arg]).await;
    let get = |path: &str| client().get(r.url(path)).send();
    let resp = get("/api/v1/readiness/checkout").await.expect("GET");
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.expect("body");
    assert!(body.contains("checkout.yaml: service: names \"cart\""), "{body}");
    let body = get("/api/v1/readiness/payments").await.expect("GET").text().await.expect("body");
    assert!(body.contains("readiness.coverage.min: expected a percentage from 0 to 100, got 180"), "{body}");
    let resp = get("/api/v1/readiness/cart?only=coverage").await.expect("GET");
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.expect("body").contains("only: unknown check \"coverage\""));
    let resp = get("/api/v1/readiness/cart?window=soon").await.expect("GET");
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.expect("body").starts_with("window: expected a duration"));
    let resp = get("/api/v1/readiness/cart?tolerance=-1").await.expect("GET");
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.text().await.expect("body"), "tolerance: must be a non-negative number, got -1\n");
    let resp = get("/api/v1/readiness/cart?baseline=1.0").await.expect("GET");
    assert_eq!(resp.status(), 400, "a baseline without a canary");
    // A service without a config file: the alert gate alone, and the report says so.
    let ready = r.get_json("/api/v1/readiness/cart").await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(report_check(&ready, "dashboard")["summary"].as_str().is_some_and(|s| s.contains("no readiness config")));
}

#[tokio::test]
async fn insecure_no_auth_and_basic_auth() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = common::free_port();
    let mut child = Command::new(redline_bin())
        .args(["receiver", "--listen", &format!("0.0.0.0:{port}"), "--insecure-no-auth", "--db"])
        .arg(dir.path().join("open.db"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while client().get(format!("{url}/readyz")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(std::time::Instant::now() < deadline, "receiver with --insecure-no-auth did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = client().post(format!("{url}/api/v2/alerts")).body(r#"[{"labels":{"alertname":"Open"}}]"#).send().await;
    assert_eq!(resp.expect("POST").status(), 200);
    let _ = child.kill();
    let _ = child.wait();

    let basic = dir.path().join("basic");
    std::fs::write(&basic, "alertmanager:pa55word\n").expect("write");
    let port = common::free_port();
    let mut child = Command::new(redline_bin())
        .args(["receiver", "--listen", &format!("127.0.0.1:{port}"), "--basic-auth-file"])
        .arg(&basic)
        .arg("--db")
        .arg(dir.path().join("basic.db"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let url = format!("http://127.0.0.1:{port}");
    while client().get(format!("{url}/readyz")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(std::time::Instant::now() < deadline, "receiver with basic auth did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = r#"[{"labels":{"alertname":"Basic"}}]"#;
    let ok = client()
        .post(format!("{url}/api/v2/alerts"))
        .basic_auth("alertmanager", Some("pa55word"))
        .body(body)
        .send()
        .await;
    assert_eq!(ok.expect("POST").status(), 200);
    let bad =
        client().post(format!("{url}/api/v2/alerts")).basic_auth("alertmanager", Some("wrong")).body(body).send().await;
    let bad = bad.expect("POST");
    assert_eq!(bad.status(), 401);
    assert_eq!(bad.headers().get("www-authenticate").and_then(|h| h.to_str().ok()), Some("Basic realm=\"redline\""));
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn postgres_outage_is_a_503_and_readyz_reports_it() {
    let store = TestStore::new(Backend::Postgres);
    let r = Receiver::start(&store.db, &[]).await;
    let pg = store.pg.as_ref().expect("postgres cluster");
    let body = |i: u32| json!([{"labels": {"alertname": "Outage", "i": i.to_string()}}]).to_string();
    assert_eq!(r.post("/api/v2/alerts", body(1)).await.status(), 200);
    pg.stop();
    let resp = r.post("/api/v2/alerts", body(2)).await;
    assert_eq!(resp.status(), 503, "Alertmanager retries on 5xx");
    assert!(resp.text().await.expect("body").contains("not stored"));
    let ready = client().get(r.url("/readyz")).send().await.expect("GET /readyz");
    assert_eq!(ready.status(), 503);
    let ready = r.get_json("/api/v1/readiness/checkout").await;
    assert_eq!(ready["ready"], false, "{ready}");
    assert_eq!(report_check(&ready, "alerts.firing")["status"], "error");
    let (status, _) = flagger(&r, "rollback", canary()).await;
    assert_eq!(status, 503, "a store outage must not roll canaries back");
    pg.restart();
    // The receiver reconnects by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = r.post("/api/v2/alerts", body(2)).await.status();
        if status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {status} after PostgreSQL came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(r.alerts("").await.len(), 2);
    let m = r.metrics().await;
    assert!(
        sample(&m, "redline_receiver_notifications_rejected_total{reason=\"store_error\"}").is_some_and(|n| n >= 1.0)
    );
}
