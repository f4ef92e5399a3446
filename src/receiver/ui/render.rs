//! The page's HTML, as pure functions of what the store and the gates hold: the overview
//! (firing alerts by service, every known service and its readiness), an alert's history as a
//! timeline, a service's latest readiness report with its canary plots, and the login form.
//! Every view is complete without JavaScript; the one script (`LIVE_JS`) only re-fetches the
//! `#live` part. maud escapes every value put into the markup, so labels and annotations
//! holding HTML or script are shown as text.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::plot;
use crate::readiness::report::Status as CheckStatus;
use crate::receiver::payload::{Status, format_timestamp};
use crate::receiver::readiness::GateAnswer;
use crate::receiver::store::{AlertState, HistoryEntry};

/// How often the page re-fetches its live part, in milliseconds.
pub const REFRESH_MS: u64 = 5000;

/// The page's one script, served as `/ui.js` (the content security policy allows no inline
/// script): every `REFRESH_MS` it fetches the current page with `?fragment=1` and replaces
/// `#live` with the answer, which the server rendered and escaped; a 401 (the session ended)
/// reloads the page, which then shows the login form.
pub const LIVE_JS: &str = r#""use strict";
(function () {
  var live = document.getElementById("live");
  if (!live) return;
  var every = Number(live.getAttribute("data-refresh-ms")) || 5000;
  var stamp = document.getElementById("refreshed");
  if (stamp) stamp.textContent = "live, updated every " + every / 1000 + " s";
  function tick() {
    var url = location.pathname + "?fragment=1";
    fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status === 401) { location.reload(); return; }
      if (!r.ok) return;
      return r.text().then(function (html) {
        live.innerHTML = html;
        if (stamp) stamp.textContent = "live, updated " + new Date().toLocaleTimeString();
      });
    }).catch(function () {}).then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
"#;

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1a202c;background:#f7fafc}
header{background:#1a202c;color:#fff;padding:10px 24px;display:flex;align-items:center;gap:24px}
header a{color:#fff;text-decoration:none}header .brand{font-weight:700;font-size:16px}
header form{margin-left:auto}header button{background:#4a5568;color:#fff;border:0;padding:5px 12px;border-radius:4px;cursor:pointer}
main{padding:16px 24px;max-width:1200px}h1{font-size:22px;margin:8px 0 16px}h2{font-size:17px;margin:24px 0 8px}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:12px}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e2e8f0;vertical-align:top}
th{background:#edf2f7;font-weight:600}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;background:#718096}
.badge.firing,.badge.fail,.badge.error,.badge.critical,.badge.notready,.badge.high,.badge.low{background:#c53030}
.badge.warning,.badge.warn,.badge.marginal{background:#c05621}
.badge.resolved,.badge.pass,.badge.ready{background:#2f855a}.badge.skip,.badge.none,.badge.nodata{background:#a0aec0}
td.check{white-space:nowrap}
.muted{color:#718096}.mono{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:12px 16px;margin-bottom:12px}
ol.timeline{list-style:none;padding-left:0;border-left:3px solid #cbd5e0;margin-left:8px}
ol.timeline li{position:relative;padding:4px 0 14px 20px}
ol.timeline li::before{content:'';position:absolute;left:-9px;top:8px;width:14px;height:14px;border-radius:50%;background:#718096}
ol.timeline li.firing::before{background:#c53030}ol.timeline li.resolved::before{background:#2f855a}
ul.reasons{margin:6px 0;padding-left:20px;color:#c53030}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plot{background:#fff;border:1px solid #e2e8f0}
form.login{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:20px;max-width:380px}
form.login input{width:100%;box-sizing:border-box;padding:6px;margin:6px 0 12px}
.error-text{color:#c53030}
";

/// Characters of a path segment left as they are in links; everything else is %-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The link to a service's page.
pub fn service_href(service: &str) -> String {
    format!("/services/{}", utf8_percent_encode(service, SEGMENT))
}

/// The link to an alert's history.
pub fn alert_href(fingerprint: &str) -> String {
    format!("/alerts/{}", utf8_percent_encode(fingerprint, SEGMENT))
}

/// A whole page: the header (with a sign-out button when the visitor has a session), and
/// `live`, the part the script refreshes.
pub fn page(title: &str, signed_in: bool, live: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · redline receiver" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a.brand href="/" { "redline receiver" }
                    a href="/" { "alerts" }
                    span #refreshed .muted { "static view (refresh the page to update)" }
                    @if signed_in {
                        form method="post" action="/logout" { button type="submit" { "sign out" } }
                    }
                }
                main #live data-refresh-ms=(REFRESH_MS) { (live) }
                script src="/ui.js" {}
            }
        }
    }
}

/// The login form for a receiver that takes a Bearer token.
pub fn login(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "sign in · redline receiver" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header { span.brand { "redline receiver" } }
                main {
                    h1 { "Sign in" }
                    form.login method="post" action="/login" {
                        p { "This receiver takes a Bearer token (the content of its " code { "--bearer-token-file" } ")." }
                        @if let Some(e) = error { p.error-text { (e) } }
                        label for="token" { "Token" }
                        input #token type="password" name="token" autocomplete="current-password" required;
                        button type="submit" { "sign in" }
                    }
                }
            }
        }
    }
}

/// What a Basic-auth receiver answers a browser without credentials, beside its 401 prompt.
pub fn denied() -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "sign in · redline receiver" } style { (PreEscaped(CSS)) } }
            body { main { h1 { "Sign in required" } p { "This receiver needs its user name and password." } } }
        }
    }
}

fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (text) } }
}

/// How long ago `then` was, at `now` (both Unix nanoseconds), in its two largest units
/// (`1m 30s`, `3days 4h`); the exact time is in the element's title.
pub fn ago(then: i64, now: i64) -> String {
    let secs = (now.saturating_sub(then) / 1_000_000_000).max(0) as u64;
    let full = humantime::format_duration(std::time::Duration::from_secs(secs)).to_string();
    full.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

fn when(t: i64, now: i64) -> Markup {
    html! { time datetime=(format_timestamp(t)) title=(format_timestamp(t)) { (ago(t, now)) " ago" } }
}

fn label_list(labels: &BTreeMap<String, String>) -> Markup {
    html! {
        span.mono {
            @for (i, (k, v)) in labels.iter().enumerate() {
                @if i > 0 { ", " }
                (k) "=\"" (v) "\""
            }
        }
    }
}

fn severity(a: &AlertState) -> &str {
    a.labels.get("severity").map_or("none", String::as_str)
}

/// A service known to the page: from its alerts or its latest readiness report.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    pub name: String,
    pub firing: usize,
    pub critical: usize,
    /// The latest readiness verdict, if a report was made.
    pub ready: Option<bool>,
}

/// The overview's live part: firing alerts grouped by service, then every known service.
pub fn overview(firing: &[AlertState], services: &[ServiceRow], now: i64) -> Markup {
    let mut by_service: BTreeMap<&str, Vec<&AlertState>> = BTreeMap::new();
    for a in firing {
        by_service.entry(a.labels.get("service").map_or("", String::as_str)).or_default().push(a);
    }
    html! {
        h1 { "Firing alerts" }
        @if firing.is_empty() {
            p.card { "No alert is firing." }
        }
        @for (service, alerts) in &by_service {
            section.card {
                h2 {
                    @if service.is_empty() { span.muted { "(no service label)" } }
                    @else { a href=(service_href(service)) { (service) } }
                    " " span.muted { (alerts.len()) " firing" }
                }
                table {
                    thead { tr { th { "alert" } th { "severity" } th { "since" } th { "summary" } th { "labels" } } }
                    tbody {
                        @for a in alerts {
                            tr.alert {
                                td { a href=(alert_href(&a.fingerprint)) { (a.labels.get("alertname").map_or("(no alertname)", String::as_str)) } }
                                td { (badge(severity(a), severity(a))) }
                                td { (when(a.starts_at, now)) }
                                td { (a.annotations.get("summary").map_or("", String::as_str)) }
                                td { (label_list(&a.labels)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Services" }
        @if services.is_empty() {
            p.muted { "No alert or readiness report yet." }
        } @else {
            table {
                thead { tr { th { "service" } th { "firing" } th { "critical" } th { "readiness (latest report)" } } }
                tbody {
                    @for s in services {
                        tr {
                            td { a href=(service_href(&s.name)) { (s.name) } }
                            td { (s.firing) }
                            td { (s.critical) }
                            td {
                                @match s.ready {
                                    Some(true) => (badge("ready", "ready")),
                                    Some(false) => (badge("notready", "not ready")),
                                    None => span.muted { "no report" },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// An alert's page: its labels, annotations, current state and every stored event, oldest
/// first, as a timeline.
pub fn alert(fingerprint: &str, state: Option<&AlertState>, history: &[HistoryEntry], now: i64) -> Markup {
    let name = state.and_then(|a| a.labels.get("alertname")).map_or("alert", String::as_str);
    html! {
        h1 { (name) " " span.mono.muted { (fingerprint) } }
        @match state {
            None => p.card { "No alert with this fingerprint is stored." },
            Some(a) => {
                section.card {
                    p {
                        (badge(a.state.as_str(), a.state.as_str())) " "
                        (badge(severity(a), severity(a))) " since " (when(a.starts_at, now))
                        @if let Some(end) = a.ends_at { ", ends " span.mono { (format_timestamp(end)) } }
                        @if let Some(s) = a.labels.get("service") { " · service " a href=(service_href(s)) { (s) } }
                    }
                    table {
                        tbody {
                            @for (k, v) in &a.labels { tr { th { "label " (k) } td.mono { (v) } } }
                            @for (k, v) in &a.annotations { tr { th { "annotation " (k) } td { (v) } } }
                            @if !a.generator_url.is_empty() { tr { th { "generator" } td.mono { (a.generator_url) } } }
                        }
                    }
                }
            }
        }
        h2 { "History" }
        @if history.is_empty() { p.muted { "No notification stored." } }
        ol.timeline {
            @for h in history {
                li class=(h.status.as_str()) {
                    strong { (badge(h.status.as_str(), h.status.as_str())) } " received " (when(h.received_at, now))
                    " via " (h.source)
                    @if !h.receiver.is_empty() { " (receiver " (h.receiver) ")" }
                    br;
                    span.muted { "starts " span.mono { (format_timestamp(h.starts_at)) } }
                    @if let Some(end) = h.ends_at { span.muted { ", ends " span.mono { (format_timestamp(end)) } } }
                    @if let Some(s) = h.annotations.get("summary") { br; (s) }
                }
            }
        }
    }
}

fn check_status(s: CheckStatus) -> &'static str {
    s.as_str()
}

/// A service's page: its firing alerts, its latest readiness report (received at the given
/// time) with the blocking reasons and every check, and the canary judgement with a plot per
/// metric.
pub fn service(name: &str, firing: &[AlertState], report: Option<&(i64, GateAnswer)>, now: i64) -> Markup {
    html! {
        h1 { "Service " (name) }
        h2 { "Firing alerts" }
        @if firing.is_empty() { p.card { "No alert is firing for this service." } }
        @else {
            table {
                thead { tr { th { "alert" } th { "severity" } th { "since" } th { "summary" } } }
                tbody {
                    @for a in firing {
                        tr.alert {
                            td { a href=(alert_href(&a.fingerprint)) { (a.labels.get("alertname").map_or("(no alertname)", String::as_str)) } }
                            td { (badge(severity(a), severity(a))) }
                            td { (when(a.starts_at, now)) }
                            td { (a.annotations.get("summary").map_or("", String::as_str)) }
                        }
                    }
                }
            }
        }
        h2 { "Readiness" }
        @match report {
            None => p.card.muted {
                "No readiness report yet: one is kept from each GET /api/v1/readiness/" (name)
                " and each Flagger confirm-promotion call."
            },
            Some((at, answer)) => {
                @let r = &answer.report;
                section.card #readiness {
                    p {
                        @if r.ready { (badge("ready", "ready")) " may be promoted" }
                        @else { (badge("notready", "not ready")) " may not be promoted" }
                        " · report of " (when(*at, now)) " · "
                        (r.counts.pass) " pass, " (r.counts.fail) " fail, " (r.counts.warn) " warn, "
                        (r.counts.error) " error, " (r.counts.skip) " skipped"
                    }
                    @if !answer.reasons.is_empty() {
                        p { strong { "Blocking:" } }
                        ul.reasons { @for reason in &answer.reasons { li { (reason) } } }
                    }
                }
                table #checks {
                    thead { tr { th { "check" } th { "status" } th { "blocks" } th { "summary" } th { "evidence" } } }
                    tbody {
                        @for c in &r.checks {
                            tr {
                                td.mono.check { (c.id) }
                                td { (badge(check_status(c.status), check_status(c.status))) }
                                td { @if c.blocks { "yes" } @else { span.muted { "no" } } }
                                td {
                                    (c.summary)
                                    @for d in &c.details { br; span.muted { (d) } }
                                }
                                td { @for e in &c.evidence { div.mono { (e) } } }
                            }
                        }
                    }
                }
                @if let Some(canary) = r.checks.iter().find(|c| c.id == "canary") {
                    h2 { "Canary judgement" }
                    p { (badge(check_status(canary.status), check_status(canary.status))) " " (canary.summary) }
                    @if canary.series.is_empty() { p.muted { "No samples to plot." } }
                    div.plots {
                        @for s in &canary.series {
                            figure {
                                figcaption { strong { (s.name) } " " (badge(s.classification, s.classification)) }
                                (plot::series_svg(s))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every service worth listing: those with alerts (any state) or a readiness report.
pub fn service_rows(alerts: &[AlertState], reports: &[(String, bool)]) -> Vec<ServiceRow> {
    let mut rows: BTreeMap<String, ServiceRow> = BTreeMap::new();
    for a in alerts {
        let Some(name) = a.labels.get("service") else { continue };
        let r = rows.entry(name.clone()).or_insert_with(|| ServiceRow {
            name: name.clone(),
            firing: 0,
            critical: 0,
            ready: None,
        });
        if a.state == Status::Firing {
            r.firing += 1;
            if a.labels.get("severity").is_some_and(|s| s == "critical") {
                r.critical += 1;
            }
        }
    }
    for (name, ready) in reports {
        rows.entry(name.clone())
            .or_insert_with(|| ServiceRow { name: name.clone(), firing: 0, critical: 0, ready: None })
            .ready = Some(*ready);
    }
    rows.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::report::{CheckResult, MetricSeries, Report};

    const EVIL: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";
    const NOW: i64 = 1_700_000_000_000_000_000;

    fn evil_map() -> BTreeMap<String, String> {
        [("alertname", EVIL), ("service", EVIL), ("severity", EVIL), ("x", EVIL)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn alert_state() -> AlertState {
        AlertState {
            fingerprint: "00ff".into(),
            state: Status::Firing,
            labels: evil_map(),
            annotations: [("summary".to_string(), EVIL.to_string())].into(),
            starts_at: NOW - 90_000_000_000,
            ends_at: None,
            generator_url: EVIL.into(),
            last_notified_at: NOW,
            notifications: 1,
        }
    }

    fn report() -> GateAnswer {
        let check = CheckResult {
            id: "canary",
            status: CheckStatus::Fail,
            summary: EVIL.into(),
            evidence: vec![EVIL.into()],
            details: vec![EVIL.into()],
            blocks: true,
            duration_ms: 1,
            series: vec![MetricSeries {
                name: EVIL.into(),
                classification: "high",
                baseline: vec![0.1, 0.1],
                canary: vec![0.2, 0.4],
            }],
        };
        GateAnswer { report: Report::new(EVIL, "t".into(), vec![check]), reasons: vec![EVIL.into()] }
    }

    /// Nothing the sender wrote comes out as markup: no tag, attribute or entity of its own.
    fn assert_inert(html: &str) {
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"), "{html}");
        // The only script is the page's own, loaded from /ui.js.
        assert!(html.matches("<script").count() <= 1, "{html}");
    }

    #[test]
    fn labels_annotations_and_reports_are_escaped_in_every_view() {
        let a = alert_state();
        let rows = service_rows(std::slice::from_ref(&a), &[(EVIL.to_string(), false)]);
        assert_inert(&page("t", true, overview(std::slice::from_ref(&a), &rows, NOW)).into_string());
        let history = vec![HistoryEntry {
            received_at: NOW,
            status: Status::Firing,
            starts_at: a.starts_at,
            ends_at: Some(NOW + 1),
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            generator_url: EVIL.into(),
            source: EVIL.into(),
            receiver: EVIL.into(),
            group_key: EVIL.into(),
        }];
        assert_inert(&alert("00ff", Some(&a), &history, NOW).into_string());
        assert_inert(&service(EVIL, std::slice::from_ref(&a), Some(&(NOW, report())), NOW).into_string());
        assert_inert(&login(Some(EVIL)).into_string());
    }

    #[test]
    fn links_encode_what_they_carry() {
        assert_eq!(service_href("check out/../x?y"), "/services/check%20out%2F..%2Fx%3Fy");
        assert_eq!(alert_href("00ff"), "/alerts/00ff");
        let html = overview(&[alert_state()], &[], NOW).into_string();
        assert!(html.contains("href=\"/services/%3Cscript%3Ealert"), "{html}");
    }

    #[test]
    fn the_overview_groups_firing_alerts_by_service_with_severity_and_age() {
        let mut a = alert_state();
        a.labels = [("alertname", "HighErrorRatio"), ("service", "checkout"), ("severity", "critical")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let rows = service_rows(std::slice::from_ref(&a), &[("cart".to_string(), true)]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[1].name.as_str(), rows[1].firing, rows[1].critical, rows[1].ready), ("checkout", 1, 1, None));
        assert_eq!(rows[0].ready, Some(true));
        let html = overview(&[a], &rows, NOW).into_string();
        assert!(html.contains(">HighErrorRatio</a>"), "{html}");
        assert!(html.contains("class=\"badge critical\""), "{html}");
        assert!(html.contains("1m 30s ago"), "{html}");
        assert_eq!(ago(NOW - 90_061_000_000_000, NOW), "1day 1h", "two units at most");
        assert_eq!(ago(NOW, NOW), "0s");
        assert!(html.contains(">ready</span>") && html.contains(">no report<"), "{html}");
    }

    #[test]
    fn a_service_page_shows_blocking_reasons_checks_and_canary_plots() {
        let html = service("checkout", &[], Some(&(NOW, report())), NOW).into_string();
        assert!(html.contains("not ready"), "{html}");
        assert!(html.contains("class=\"reasons\""), "{html}");
        assert!(html.contains("Canary judgement") && html.contains("<svg"), "{html}");
        let html = service("checkout", &[], None, NOW).into_string();
        assert!(html.contains("No readiness report yet"), "{html}");
    }
}
