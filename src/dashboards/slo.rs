//! The SLO dashboard of one service: error budget left over 30 days and the burn rates of the
//! multi-window pairs the shipped `rules/redline-slo.yml` alerts on.

use super::grafana::{Dashboard, Item, Kind, Panel, target, textbox_variable};
use super::{DURATION, SERVICE, SERVICE_FAILED, firing_alerts_annotation, service_variables};

/// One SLO: the recording rules of its bad-request ratio and its target variable.
struct Slo {
    name: &'static str,
    /// `redline:slo_errors:ratio_rate` or `redline:slo_slow:ratio_rate` (+ window).
    record: &'static str,
    /// Grafana variable holding the target in percent.
    variable: &'static str,
}

const AVAILABILITY: Slo =
    Slo { name: "Availability", record: "redline:slo_errors:ratio_rate", variable: "availability" };
const LATENCY: Slo = Slo { name: "Latency", record: "redline:slo_slow:ratio_rate", variable: "latency_target" };

/// The (long, short) window pairs of `rules/redline-slo.yml`, with the burn rate that alerts.
const PAGE: [(&str, &str, f64); 2] = [("1h", "5m", 14.4), ("6h", "30m", 6.0)];
const TICKET: [(&str, &str, f64); 2] = [("1d", "2h", 3.0), ("3d", "6h", 1.0)];
const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

impl Slo {
    fn budget(&self) -> String {
        format!("(1 - ${} / 100)", self.variable)
    }

    /// The burn rate of a pair as the alert sees it: both windows are over the threshold
    /// exactly when the smaller burn rate is.
    fn pair(&self, long: &str, short: &str) -> String {
        format!(
            r#"min by (service, namespace) ({{__name__=~"{r}({long}|{short})",{SERVICE}}}) / {b}"#,
            r = self.record,
            b = self.budget()
        )
    }

    fn pairs_panel(&self, kind: &str, pairs: &[(&str, &str, f64)], steps: &[(f64, &'static str)]) -> Panel {
        let mut p = Panel::timeseries(&format!("{} burn rate: {kind} alerts", self.name), "suffix:x")
            .describe(&format!(
                "Burn rate of the {} error budget per alert window pair: the smaller of the long- and short-window burn rates (error ratio / budget), so a line over its dashed threshold means both windows are, and the alert of `rules/redline-slo.yml` is pending or firing. Needs the rules loaded in Prometheus.",
                self.name.to_lowercase()
            ))
            .width(12)
            .thresholds("green", steps);
        for (long, short, burn) in pairs {
            p = p.target(target(self.pair(long, short), &format!("{long} & {short} (alerts over {burn})")));
        }
        p
    }

    fn windows_panel(&self) -> Panel {
        let mut p = Panel::timeseries(&format!("{} burn rate by window", self.name), "suffix:x")
            .describe("Error ratio over each window of the recording rules divided by the error budget: 1 spends exactly the budget in 30 days.")
            .width(24)
            .thresholds("green", &[(1.0, "orange")]);
        for w in WINDOWS {
            p = p.target(target(format!("{}{w}{{{SERVICE}}} / {}", self.record, self.budget()), w));
        }
        p
    }

    fn items(&self) -> Vec<Item> {
        vec![
            Item::Panel(self.pairs_panel("page", &PAGE, &[(6.0, "orange"), (14.4, "red")])),
            Item::Panel(self.pairs_panel("ticket", &TICKET, &[(1.0, "yellow"), (3.0, "orange")])),
            Item::Panel(self.windows_panel()),
        ]
    }
}

fn increase(selector: &str) -> String {
    format!("sum(increase({selector}[30d]))")
}

/// The SLI over 30 days and the share of the error budget it leaves.
fn stats(slo: &Slo, sli: &str, good_ratio: &str, description: &str) -> [Item; 2] {
    [
        Item::Panel(
            Panel::new(Kind::Stat, &format!("{sli} (30 days)"), "percentunit")
                .describe(description)
                .thresholds("blue", &[])
                .target(target(good_ratio, sli).instant()),
        ),
        Item::Panel(
            Panel::new(Kind::Stat, &format!("{} error budget remaining", slo.name), "percentunit")
                .describe(&format!(
                    "Share of the 30-day {} error budget (100% - ${}%) not yet spent; below 0 the SLO is missed.",
                    slo.name.to_lowercase(),
                    slo.variable
                ))
                .thresholds("red", &[(0.0, "orange"), (0.25, "green")])
                .target(target(format!("1 - (1 - ({good_ratio})) / {}", slo.budget()), "remaining").instant()),
        ),
    ]
}

pub fn dashboard() -> Dashboard {
    let mut variables = service_variables();
    variables.push(textbox_variable("availability", "Availability target (%)", "99.9"));
    variables.push(textbox_variable("latency_target", "Latency target (% within 250 ms)", "99"));
    let all = increase(&format!("{DURATION}_count{{{SERVICE}}}"));
    let success = format!(
        r#"1 - ({failed} or vector(0)) / {all}"#,
        failed = increase(&format!("{DURATION}_count{{{SERVICE},{SERVICE_FAILED}}}"))
    );
    let fast = format!("{} / {all}", increase(&format!(r#"{DURATION}_bucket{{{SERVICE},le="0.25"}}"#)));
    let mut items = vec![Item::Row("Error budget over 30 days")];
    items.extend(stats(
        &AVAILABILITY,
        "Availability",
        &success,
        "Share of requests over the last 30 days that the service did not fail (no 5xx, no proxy error; client failures and drain cuts, `client_*` and `shutdown`, are not the service's failures).",
    ));
    items.extend(stats(
        &LATENCY,
        "Requests within 250 ms",
        &fast,
        "Share of requests over the last 30 days that finished within 0.25s (the le=\"0.25\" bucket).",
    ));
    items.push(Item::Row("Availability burn rate"));
    items.extend(AVAILABILITY.items());
    items.push(Item::Row("Latency burn rate"));
    items.extend(LATENCY.items());
    Dashboard {
        uid: "redline-slo",
        title: "redline / SLO",
        description: "Error budgets and multi-window burn rates of a service's availability and latency SLOs (rules/redline-slo.yml).",
        tags: vec!["redline", "slo"],
        variables,
        annotations: vec![firing_alerts_annotation()],
        items,
    }
}
