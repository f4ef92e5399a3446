//! The alerts dashboard of one service: its pending and firing alerts (Prometheus' `ALERTS`
//! series and the sidecars' own rule evaluation) and the delivery of their notifications.

use super::grafana::{Dashboard, Item, Kind, Panel, target};
use super::{SERVICE, firing_alerts_annotation, service_variables};

fn count_alerts(extra: &str) -> String {
    format!("count(ALERTS{{{SERVICE}{extra}}}) or vector(0)")
}

fn rate(family: &str) -> String {
    format!("sum by (pod, instance) (rate({family}{{{SERVICE}}}[$__rate_interval]))")
}

pub fn dashboard() -> Dashboard {
    let stat = |title: &str, extra: &str, colour: &'static str, description: &str| {
        Item::Panel(
            Panel::new(Kind::Stat, title, "short")
                .describe(description)
                .thresholds("green", &[(1.0, colour)])
                .target(target(count_alerts(extra), "alerts").instant()),
        )
    };
    let items = vec![
        Item::Row("Now"),
        stat(
            "Firing alerts",
            r#",alertstate="firing""#,
            "red",
            "Alerts of the service firing in Prometheus now (the shipped rules aggregate by service and namespace).",
        ),
        stat(
            "Critical alerts firing",
            r#",alertstate="firing",severity="critical""#,
            "red",
            "Firing alerts with severity critical: these page, and block canary promotion.",
        ),
        stat(
            "Pending alerts",
            r#",alertstate="pending""#,
            "orange",
            "Alerts whose condition holds but whose `for` has not elapsed yet.",
        ),
        Item::Panel(
            Panel::new(Kind::Stat, "Rule evaluation failures", "short")
                .describe("Failed rule evaluations in the service's sidecars over the dashboard's time range: a failing rule cannot alert.")
                .thresholds("green", &[(1.0, "red")])
                .target(
                    target(
                        format!("sum(increase(redline_rule_evaluation_failures_total{{{SERVICE}}}[$__range])) or vector(0)"),
                        "failures",
                    )
                    .instant(),
                ),
        ),
        Item::Panel(
            Panel::new(Kind::Table, "Active alerts", "short")
                .describe("Every pending or firing alert of the service in Prometheus, with its labels.")
                .width(24)
                .target(target(format!("ALERTS{{{SERVICE}}}"), "").instant()),
        ),
        Item::Row("History"),
        Item::Panel(
            Panel::timeseries("Alerts in Prometheus", "short")
                .describe("Pending and firing alerts over time, from the `ALERTS` series of the rules Prometheus evaluates.")
                .width(12)
                .target(target(
                    format!("sum by (alertname, alertstate) (ALERTS{{{SERVICE}}})"),
                    "{{alertname}} {{alertstate}}",
                )),
        ),
        Item::Panel(
            Panel::timeseries("Alerts in the sidecars", "short")
                .describe("Pending and firing alerts of the rules each sidecar evaluates over its own metrics (`redline_alerts`).")
                .width(12)
                .target(target(
                    format!("sum by (alertname, alertstate) (redline_alerts{{{SERVICE}}})"),
                    "{{alertname}} {{alertstate}}",
                )),
        ),
        Item::Row("Notifications"),
        Item::Panel(
            Panel::timeseries("Notifications sent to Alertmanager", "short")
                .describe("Alerts per second the sidecars delivered to Alertmanager.")
                .target(target(rate("redline_notifications_sent_total"), "{{pod}} {{instance}}")),
        ),
        Item::Panel(
            Panel::timeseries("Notification errors", "short")
                .describe("Failed deliveries to Alertmanager per second (retried).")
                .thresholds("green", &[(0.0001, "red")])
                .target(target(rate("redline_notification_errors_total"), "{{pod}} {{instance}}")),
        ),
        Item::Panel(
            Panel::timeseries("Notifications dropped", "short")
                .describe("Alerts dropped per second because the queue to Alertmanager was full: these alerts were never delivered.")
                .thresholds("green", &[(0.0001, "red")])
                .target(target(rate("redline_notifications_dropped_total"), "{{pod}} {{instance}}")),
        ),
    ];
    Dashboard {
        uid: "redline-alerts",
        title: "redline / Alerts",
        description: "Pending and firing alerts of a service and the delivery of their notifications.",
        tags: vec!["redline", "alerts"],
        variables: service_variables(),
        annotations: vec![firing_alerts_annotation()],
        items,
    }
}
