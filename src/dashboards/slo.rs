//! The SLO dashboard of one service: error budget left over the SLO period and the burn rates
//! of the multi-window pairs the SLO rules ([`crate::slo`], `redline rules slo`) alert on, for
//! the configured objective (targets, latency threshold, period).

use super::grafana::{Dashboard, Item, Kind, Panel, target, textbox_variable};
use super::{DURATION, SERVICE, SERVICE_FAILED, SloView, firing_alerts_annotation, service_variables};
use crate::slo::{TIERS, prom_duration, windows};

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

/// The (long, short) window pairs of the SLO rules for `period`, with the burn rate that
/// alerts: the paging ones or the ticket ones.
fn pairs(period: std::time::Duration, pages: bool) -> Vec<(String, String, f64)> {
    TIERS
        .iter()
        .filter(|t| t.pages() == pages)
        .map(|t| (prom_duration(t.long(period)), prom_duration(t.short(period)), t.burn))
        .collect()
}

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

    fn pairs_panel(&self, kind: &str, pairs: &[(String, String, f64)], steps: &[(f64, &'static str)]) -> Panel {
        let mut p = Panel::timeseries(&format!("{} burn rate: {kind} alerts", self.name), "suffix:x")
            .describe(&format!(
                "Burn rate of the {} error budget per alert window pair: the smaller of the long- and short-window burn rates (error ratio / budget), so a line over its dashed threshold means both windows are, and the SLO alert is pending or firing. Needs the SLO rules (`redline rules slo`) loaded in Prometheus.",
                self.name.to_lowercase()
            ))
            .width(12)
            .thresholds("green", steps);
        for (long, short, burn) in pairs {
            p = p.target(target(self.pair(long, short), &format!("{long} & {short} (alerts over {burn})")));
        }
        p
    }

    fn windows_panel(&self, o: &SloView) -> Panel {
        let mut p = Panel::timeseries(&format!("{} burn rate by window", self.name), "suffix:x")
            .describe(&format!(
                "Error ratio over each window of the recording rules divided by the error budget: 1 spends exactly the budget in {}.",
                period_words(o)
            ))
            .width(24)
            .thresholds("green", &[(1.0, "orange")]);
        for w in windows(o.period) {
            let w = prom_duration(w);
            p = p.target(target(format!("{}{w}{{{SERVICE}}} / {}", self.record, self.budget()), &w));
        }
        p
    }

    fn items(&self, o: &SloView) -> Vec<Item> {
        vec![
            Item::Panel(self.pairs_panel("page", &pairs(o.period, true), &[(6.0, "orange"), (14.4, "red")])),
            Item::Panel(self.pairs_panel("ticket", &pairs(o.period, false), &[(1.0, "yellow"), (3.0, "orange")])),
            Item::Panel(self.windows_panel(o)),
        ]
    }
}

/// The SLO period in words: `30 days`, `12 hours`.
fn period_words(o: &SloView) -> String {
    let s = o.period.as_secs();
    for (unit, size) in [("day", 86_400), ("hour", 3_600), ("minute", 60)] {
        if s >= size && s.is_multiple_of(size) {
            let n = s / size;
            return format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
        }
    }
    prom_duration(o.period)
}

fn increase(selector: &str, o: &SloView) -> String {
    format!("sum(increase({selector}[{}]))", prom_duration(o.period))
}

/// The SLI over the period and the share of the error budget it leaves.
fn stats(slo: &Slo, o: &SloView, sli: &str, good_ratio: &str, description: &str) -> [Item; 2] {
    let period = period_words(o);
    [
        Item::Panel(
            Panel::new(Kind::Stat, &format!("{sli} ({period})"), "percentunit")
                .describe(description)
                .thresholds("blue", &[])
                .target(target(good_ratio, sli).instant()),
        ),
        Item::Panel(
            Panel::new(Kind::Stat, &format!("{} error budget remaining", slo.name), "percentunit")
                .describe(&format!(
                    "Share of the {} {} error budget (100% - ${}%) not yet spent; below 0 the SLO is missed.",
                    crate::slo::period_adjective(o.period).trim_end(),
                    slo.name.to_lowercase(),
                    slo.variable
                ))
                .thresholds("red", &[(0.0, "orange"), (0.25, "green")])
                .target(target(format!("1 - (1 - ({good_ratio})) / {}", slo.budget()), "remaining").instant()),
        ),
    ]
}

pub fn dashboard(o: &SloView) -> Dashboard {
    let number = crate::slo::number;
    let within = o.threshold_words();
    let period = period_words(o);
    let le = o.le();
    let mut variables = service_variables();
    variables.push(textbox_variable("availability", "Availability target (%)", &number(o.availability)));
    variables.push(textbox_variable(
        "latency_target",
        &format!("Latency target (% within {within})"),
        &number(o.latency_target),
    ));
    let all = increase(&format!("{DURATION}_count{{{SERVICE}}}"), o);
    let success = format!(
        r#"1 - ({failed} or vector(0)) / {all}"#,
        failed = increase(&format!("{DURATION}_count{{{SERVICE},{SERVICE_FAILED}}}"), o)
    );
    let fast = format!("{} / {all}", increase(&format!(r#"{DURATION}_bucket{{{SERVICE},le="{le}"}}"#), o));
    // Row titles are fixed texts; the stats below name the period.
    let title = if o.period == crate::slo::DEFAULT_PERIOD {
        "Error budget over 30 days"
    } else {
        "Error budget over the SLO period"
    };
    let mut items = vec![Item::Row(title)];
    items.extend(stats(
        &AVAILABILITY,
        o,
        "Availability",
        &success,
        &format!("Share of requests over the last {period} that the service did not fail (no 5xx, no proxy error; client failures and drain cuts, `client_*` and `shutdown`, are not the service's failures)."),
    ));
    items.extend(stats(
        &LATENCY,
        o,
        &format!("Requests within {within}"),
        &fast,
        &format!("Share of requests over the last {period} that finished within {within} (the le=\"{le}\" bucket)."),
    ));
    items.push(Item::Row("Availability burn rate"));
    items.extend(AVAILABILITY.items(o));
    items.push(Item::Row("Latency burn rate"));
    items.extend(LATENCY.items(o));
    Dashboard {
        uid: "redline-slo",
        title: "redline / SLO",
        description: "Error budgets and multi-window burn rates of a service's availability and latency SLOs (the rules of `redline rules slo`, rules/redline-slo.yml for the default configuration).",
        tags: vec!["redline", "slo"],
        variables,
        annotations: vec![firing_alerts_annotation()],
        items,
    }
}
