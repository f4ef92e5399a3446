//! `redline alerts list`: asks a running receiver's `GET /api/v1/alerts` and prints the
//! alerts as a table or as JSON. Rendering is pure; only `run` does I/O.

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use anyhow::Context as _;

use crate::errors::{CommandError, Outcome, Verdict};

/// `redline alerts`: the alerts stored by a running receiver.
#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// List alerts and their current state from a receiver's query API.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Base URL of the receiver.
    #[arg(long, env = "REDLINE_RECEIVER_URL", default_value = "http://127.0.0.1:9095")]
    pub receiver: String,
    /// Only alerts whose `service` label is this.
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Only alerts notified since this RFC 3339 time or duration ago (e.g. 1h).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
    #[arg(long, env = "REDLINE_RECEIVER_BEARER_TOKEN_FILE", conflicts_with = "basic_auth_file")]
    pub bearer_token_file: Option<std::path::PathBuf>,
    #[arg(long, env = "REDLINE_RECEIVER_BASIC_AUTH_FILE")]
    pub basic_auth_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StateArg {
    Firing,
    Resolved,
}

impl StateArg {
    pub fn as_str(self) -> &'static str {
        match self {
            StateArg::Firing => "firing",
            StateArg::Resolved => "resolved",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// The request URL for the arguments' filters.
pub fn list_url(args: &ListArgs) -> String {
    let mut url = format!("{}/api/v1/alerts", args.receiver.trim_end_matches('/'));
    let mut sep = '?';
    let mut add = |k: &str, v: &str| {
        url.push(sep);
        sep = '&';
        url.push_str(k);
        url.push('=');
        url.push_str(&utf8_percent_encode(v, NON_ALPHANUMERIC).to_string());
    };
    if let Some(s) = &args.service {
        add("service", s);
    }
    if let Some(s) = &args.state {
        add("state", s.as_str());
    }
    if let Some(s) = &args.since {
        add("since", s);
    }
    url
}

/// The `Authorization` header value from the credential flags, if any.
fn authorization(args: &ListArgs) -> Result<Option<String>, String> {
    let read = |flag: &str, p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("{flag} {}: cannot read: {e}", p.display()))
    };
    if let Some(p) = &args.bearer_token_file {
        return Ok(Some(format!("Bearer {}", read("--bearer-token-file", p)?)));
    }
    if let Some(p) = &args.basic_auth_file {
        let creds = read("--basic-auth-file", p)?;
        return Ok(Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds))));
    }
    Ok(None)
}

/// Renders alerts (objects of the query API) as an aligned table, newest notification first.
pub fn render_table(alerts: &[Value]) -> String {
    let header = ["STATE", "ALERTNAME", "SERVICE", "SEVERITY", "STARTED", "LAST NOTIFIED", "FINGERPRINT"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let rows: Vec<[String; 7]> = alerts
        .iter()
        .map(|a| {
            [
                s(&a["state"]),
                s(&a["labels"]["alertname"]),
                s(&a["labels"]["service"]),
                s(&a["labels"]["severity"]),
                s(&a["startsAt"]),
                s(&a["lastNotifiedAt"]),
                s(&a["fingerprint"]),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, c) in cells.enumerate() {
            l.push_str(c);
            l.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for r in &rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

/// `--receiver` as given: an http:// URL with a host (the client speaks plain HTTP only).
fn check_receiver(receiver: &str) -> Result<(), String> {
    match receiver.parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => Ok(()),
        _ => Err(format!("--receiver: expected an http:// URL such as http://127.0.0.1:9095, got {receiver:?}")),
    }
}

async fn fetch(url: &str, auth: Option<String>) -> Result<Value, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = http::Request::get(url);
    if let Some(a) = auth {
        req = req.header(http::header::AUTHORIZATION, a);
    }
    let req = req.body(Empty::new()).map_err(|e| format!("--receiver {url:?}: {e}"))?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| format!("{url}: no answer within 30s"))?
        .map_err(|e| format!("{url}: {}", crate::errors::with_causes(&e)))?;
    let status = resp.status();
    let body =
        resp.into_body().collect().await.map_err(|e| format!("{url}: {}", crate::errors::with_causes(&e)))?.to_bytes();
    if !status.is_success() {
        return Err(format!("{url}: {status}: {}", String::from_utf8_lossy(&body).trim()));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url}: the answer is not JSON: {e}"))
}

/// Runs `redline alerts list`: the list on stdout. Refused (exit 2) on a usage error and when
/// the receiver cannot be queried: there is no verdict to give.
pub fn run(args: Args) -> Outcome {
    let Args::List(args) = args;
    check_receiver(&args.receiver).map_err(CommandError::refused_msg)?;
    let auth = authorization(&args).map_err(CommandError::refused_msg)?;
    let url = list_url(&args);
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let answer = runtime.block_on(fetch(&url, auth)).map_err(CommandError::refused_msg)?;
    let alerts = answer["alerts"].as_array().cloned().unwrap_or_default();
    let text = match args.format {
        ListFormat::Json => serde_json::to_string_pretty(&alerts).unwrap_or_default() + "\n",
        ListFormat::Table => render_table(&alerts),
    };
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes()).context("cannot write the output")?;
    Ok(Verdict::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_carries_encoded_filters() {
        let args = ListArgs {
            receiver: "http://r:9095/".into(),
            service: Some("a b".into()),
            state: Some(StateArg::Firing),
            since: None,
            format: ListFormat::Table,
            bearer_token_file: None,
            basic_auth_file: None,
        };
        assert_eq!(list_url(&args), "http://r:9095/api/v1/alerts?service=a%20b&state=firing");
    }

    #[test]
    fn the_receiver_must_be_an_http_url() {
        assert_eq!(check_receiver("http://127.0.0.1:9095"), Ok(()));
        for bad in ["https://r:9095", "ftp://r", "r:9095", "http://", ""] {
            let e = check_receiver(bad).expect_err(bad);
            assert!(e.starts_with("--receiver: expected an http:// URL"), "{e}");
        }
    }

    #[test]
    fn table_is_aligned() {
        let alerts: Vec<Value> = serde_json::from_str(
            r#"[{"state":"firing","labels":{"alertname":"HighErrorRatio","service":"checkout","severity":"critical"},
                "startsAt":"2024-01-01T00:00:00Z","lastNotifiedAt":"2024-01-01T00:01:00Z","fingerprint":"0011"}]"#,
        )
        .expect("json");
        let t = render_table(&alerts);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("STATE   ALERTNAME       SERVICE   SEVERITY"), "{t}");
        assert!(lines[1].starts_with("firing  HighErrorRatio  checkout  critical"), "{t}");
        assert!(lines[1].ends_with("0011"), "{t}");
    }
}
