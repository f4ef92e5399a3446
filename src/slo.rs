//! SLO rules from the configuration, without I/O: from the objectives of the `slo:` section
//! (availability %, latency threshold and target, the SLO period), the recording rules of the
//! bad-request ratio over seven windows and the multi-window, multi-burn-rate alerts of the
//! Google SRE workbook ("Alerting on SLOs", table 5-8), as Sloth and Pyrra generate them. The
//! sidecar evaluates this text, `redline rules slo` prints it (a rule file or a
//! `PrometheusRule`), `rules/redline-slo.yml` is its output for the default configuration, and
//! the dashboards and readiness checks read the objective from here. Also owns which duration
//! buckets the histogram needs for the latency thresholds.

use std::fmt::Write as _;
use std::time::Duration;

/// One SLO: an availability and a latency objective over some (or all) of the service's routes.
#[derive(Clone, Debug, PartialEq)]
pub struct Objective {
    /// `None` for the service-wide SLO of a plain `slo:` map; a named objective's series and
    /// alerts carry `objective="<name>"`.
    pub name: Option<String>,
    /// The `http_route` values (route templates) it covers; empty: every request.
    pub routes: Vec<String>,
    /// Percent of requests that must not fail, above 0 and below 100.
    pub availability: f64,
    /// A request slower than this is bad for the latency SLO.
    pub latency_threshold: Duration,
    /// Percent of requests that must finish within the threshold.
    pub latency_target: f64,
}

/// Every objective of a service and the period the error budgets are counted over.
#[derive(Clone, Debug, PartialEq)]
pub struct Slos {
    pub objectives: Vec<Objective>,
    /// The SLO period (30 days by default); every window and `for` scales with it.
    pub period: Duration,
}

/// The request histogram the ratios are computed from.
pub const HISTOGRAM: &str = "http_server_request_duration_seconds";
/// The service's failures: `error_type` set and none of the client's (`client_*`) or the
/// drain's (`shutdown`); PromQL regexes are fully anchored, so no `error_type` (a success) is
/// left out too.
pub const SERVICE_FAILED: &str = r#"error_type!~"|client_.+|shutdown""#;
/// Recording rule names, before the window.
pub const ERRORS_RECORD: &str = "redline:slo_errors:ratio_rate";
pub const SLOW_RECORD: &str = "redline:slo_slow:ratio_rate";
const RUNBOOKS: &str = "https://github.com/redline-sidecar/redline/blob/main/docs/runbooks.md";

/// The default period, whose windows are the workbook's (5m … 3d).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// The recorded windows as fractions of the period: 5m, 30m, 1h, 2h, 6h, 1d, 3d of 30 days.
const WINDOW_DIVISORS: [u64; 7] = [8640, 1440, 720, 360, 120, 30, 10];

/// One alert of each SLO: a long and a short window (the period divided by these), the burn
/// rate both must exceed, `for`, severity, and the alert's name suffix (its 30-day long window).
pub struct Tier {
    pub suffix: &'static str,
    long: u64,
    short: u64,
    pub burn: f64,
    for_: u64,
    pub severity: &'static str,
}

/// Page at 14.4x (1h & 5m) and 6x (6h & 30m), ticket at 3x (1d & 2h) and 1x (3d & 6h).
pub const TIERS: [Tier; 4] = [
    Tier { suffix: "1h", long: 720, short: 8640, burn: 14.4, for_: 21_600, severity: "critical" },
    Tier { suffix: "6h", long: 120, short: 1440, burn: 6.0, for_: 2880, severity: "critical" },
    Tier { suffix: "1d", long: 30, short: 360, burn: 3.0, for_: 720, severity: "warning" },
    Tier { suffix: "3d", long: 10, short: 120, burn: 1.0, for_: 240, severity: "warning" },
];

impl Tier {
    /// The long window for `period`.
    pub fn long(&self, period: Duration) -> Duration {
        fraction(period, self.long)
    }
    pub fn short(&self, period: Duration) -> Duration {
        fraction(period, self.short)
    }
    pub fn for_(&self, period: Duration) -> Duration {
        fraction(period, self.for_)
    }
    /// Whether this tier pages (`critical`) rather than opens a ticket.
    pub fn pages(&self) -> bool {
        self.severity == "critical"
    }
}

/// `period / divisor`, to the millisecond (Prometheus durations have no finer unit).
fn fraction(period: Duration, divisor: u64) -> Duration {
    let ms = (period.as_millis() as f64 / divisor as f64).round() as u64;
    Duration::from_millis(ms)
}

/// The recorded windows for `period`, shortest first.
pub fn windows(period: Duration) -> Vec<Duration> {
    WINDOW_DIVISORS.iter().map(|d| fraction(period, *d)).collect()
}

/// The longest window: the history an evaluator must keep.
pub fn longest_window(period: Duration) -> Duration {
    fraction(period, WINDOW_DIVISORS[WINDOW_DIVISORS.len() - 1])
}

/// The shortest window: a rate over it needs two samples.
pub fn shortest_window(period: Duration) -> Duration {
    fraction(period, WINDOW_DIVISORS[0])
}

/// A duration as Prometheus writes it: `5m`, `3d`, `1h12m`, `500ms`.
pub fn prom_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut s = String::new();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        if ms >= size {
            let _ = write!(s, "{}{unit}", ms / size);
            ms %= size;
        }
    }
    s
}

/// A number as the rules write it: at most 10 decimals, no trailing zeros (`0.001`, `14.4`).
pub fn number(v: f64) -> String {
    let s = format!("{v:.10}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// The error budget of a target in percent, as a ratio: 99.9 -> 0.001.
pub fn budget(target_percent: f64) -> f64 {
    // Rounded so 100 - 99.9 reads 0.001, not 0.0009999999999994.
    ((100.0 - target_percent) / 100.0 * 1e12).round() / 1e12
}

/// A bucket bound as the histogram's `le` label writes it (`0.3`, `1`, `2.5`).
pub fn le_label(bound: f64) -> String {
    let mut s = String::new();
    crate::telemetry::metrics::exposition::write_float(&mut s, bound);
    s
}

/// Whether the bucket `bound` is the threshold (seconds), allowing for float rounding.
fn same_bound(bound: f64, threshold: Duration) -> bool {
    (bound - threshold.as_secs_f64()).abs() <= 1e-9 * bound.max(1.0)
}

/// The histogram buckets the sidecar records: `configured`, plus each latency threshold that
/// is not a bound already when `configured` is the default list (so the default 300ms works
/// with OpenTelemetry's default buckets). With custom buckets a threshold must be one of them:
/// refused naming the key (`thresholds`: the key naming each threshold, and its value).
pub fn histogram_buckets(
    configured: &[f64],
    is_default: bool,
    thresholds: &[(String, Duration)],
) -> Result<Vec<f64>, String> {
    let mut out = configured.to_vec();
    for (key, t) in thresholds {
        if out.iter().any(|b| same_bound(*b, *t)) {
            continue;
        }
        if !is_default {
            let list: Vec<String> = configured.iter().map(|b| le_label(*b)).collect();
            return Err(format!(
                "{key}: {} is not a bucket of duration_buckets [{}]; the latency SLO counts the requests \
                 in the bucket at the threshold, so set the threshold to a bucket or add {} to duration_buckets",
                humantime::format_duration(*t),
                list.join(", "),
                le_label(t.as_secs_f64())
            ));
        }
        out.push(t.as_secs_f64());
        out.sort_by(f64::total_cmp);
    }
    Ok(out)
}

/// The bucket bound at `threshold` among `buckets`, as its `le` label.
fn bucket_at(buckets: &[f64], threshold: Duration) -> Option<String> {
    buckets.iter().find(|b| same_bound(**b, threshold)).map(|b| le_label(*b))
}

/// Problems with objectives the rules cannot be built from, naming the key (`key` is the
/// objective's path: `slo` or `slo.objectives[1]`).
pub fn check_objective(key: &str, o: &Objective) -> Result<(), String> {
    if let Some(name) = &o.name {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!(
                "{key}.name: expected letters, digits, '_' and '-' (starting with a letter or digit, at most 63), got {name:?}"
            ));
        }
    }
    if o.latency_threshold.is_zero() {
        return Err(format!("{key}.latency.threshold: expected a duration above 0, such as 300ms"));
    }
    Ok(())
}

/// The `period` must give windows a rate can be computed over.
pub fn check_period(key: &str, period: Duration) -> Result<(), String> {
    if shortest_window(period) < Duration::from_secs(1) {
        return Err(format!(
            "{key}: expected at least 2h24m (the shortest window, 1/8640 of the period, must be 1s or more), got {}",
            humantime::format_duration(period)
        ));
    }
    Ok(())
}

/// `http_route=~"..."` for the routes, or nothing when the objective covers every route.
fn route_matcher(routes: &[String]) -> Option<String> {
    if routes.is_empty() {
        return None;
    }
    let alternatives: Vec<String> = routes.iter().map(|r| regex::escape(r)).collect();
    let mut quoted = String::new();
    for c in alternatives.join("|").chars() {
        match c {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            c => quoted.push(c),
        }
    }
    Some(format!("http_route=~\"{quoted}\""))
}

/// `{a,b}` of the non-empty matchers, or nothing.
fn selector(matchers: &[Option<&str>]) -> String {
    let m: Vec<&str> = matchers.iter().flatten().copied().collect();
    if m.is_empty() { String::new() } else { format!("{{{}}}", m.join(",")) }
}

/// A period in words for "the 30-day error budget": `30-day`, `12-hour`, `90-minute`.
pub fn period_adjective(period: Duration) -> String {
    let s = period.as_secs();
    for (unit, size) in [("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)] {
        if s >= size && s.is_multiple_of(size) && period.subsec_millis() == 0 {
            return format!("{}-{unit}", s / size);
        }
    }
    format!("{} ", prom_duration(period))
}

/// A span in words, rounded to its largest unit: `5 days`, `about 2 days`, `about 50 minutes`.
fn span_words(d: Duration) -> String {
    let s = d.as_secs_f64();
    for (unit, size) in [("day", 86_400.0), ("hour", 3_600.0), ("minute", 60.0), ("second", 1.0)] {
        if s >= size {
            let n = s / size;
            let whole = n.round();
            let plural = if whole == 1.0 { "" } else { "s" };
            let about = if (n - whole).abs() > 1e-9 { "about " } else { "" };
            return format!("{about}{whole} {unit}{plural}");
        }
    }
    format!("{} ms", d.as_millis())
}

/// Which of the two SLOs of an objective.
#[derive(Clone, Copy)]
enum Kind {
    Availability,
    Latency,
}

/// Everything the text of one SLO's rules needs.
struct Sli<'a> {
    kind: Kind,
    objective: &'a Objective,
    /// `le` of the bucket at the latency threshold.
    le: String,
    period: Duration,
}

const WHO: &str = "{{ $labels.service }}{{ $externalLabels.service }}";
const WHERE: &str = "{{ $labels.namespace }}{{ $externalLabels.namespace }}";

impl Sli<'_> {
    fn word(&self) -> &'static str {
        match self.kind {
            Kind::Availability => "availability",
            Kind::Latency => "latency",
        }
    }

    fn record(&self) -> &'static str {
        match self.kind {
            Kind::Availability => ERRORS_RECORD,
            Kind::Latency => SLOW_RECORD,
        }
    }

    fn budget(&self) -> f64 {
        match self.kind {
            Kind::Availability => budget(self.objective.availability),
            Kind::Latency => budget(self.objective.latency_target),
        }
    }

    fn threshold(&self) -> String {
        number(self.objective.latency_threshold.as_secs_f64()) + "s"
    }

    fn group_name(&self) -> String {
        match &self.objective.name {
            Some(name) => format!("redline-slo-{name}-{}", self.word()),
            None => format!("redline-slo-{}", self.word()),
        }
    }

    /// `{objective="name"}` on the recorded series, for alerts to pick their own.
    fn own_series(&self) -> String {
        match &self.objective.name {
            Some(name) => format!("{{objective=\"{name}\"}}"),
            None => String::new(),
        }
    }

    fn ratio_expr(&self, window: &str) -> String {
        let routes = route_matcher(&self.objective.routes);
        let all = format!(
            "sum by (service, namespace) (rate({HISTOGRAM}_count{}[{window}]))",
            selector(&[routes.as_deref()])
        );
        match self.kind {
            Kind::Availability => {
                let failed = format!(
                    "sum by (service, namespace) (rate({HISTOGRAM}_count{}[{window}]))",
                    selector(&[Some(SERVICE_FAILED), routes.as_deref()])
                );
                format!("(\n  {failed}\n  or\n  0 * {all}\n)\n/\n{all}\n")
            }
            Kind::Latency => {
                let le = format!("le=\"{}\"", self.le);
                let fast = format!(
                    "sum by (service, namespace) (rate({HISTOGRAM}_bucket{}[{window}]))",
                    selector(&[Some(&le), routes.as_deref()])
                );
                format!("1 - (\n  {fast}\n  /\n  {all}\n)\n")
            }
        }
    }

    /// The requests this SLO is about, for annotations.
    fn requests(&self) -> String {
        match &self.objective.name {
            Some(name) => format!("the {name} requests to {WHO}"),
            None => format!("the requests to {WHO}"),
        }
    }

    fn alert(&self, tier: &Tier, out: &mut String) {
        let p = self.period;
        let (long, short) = (prom_duration(tier.long(p)), prom_duration(tier.short(p)));
        let name = format!(
            "Redline{}BudgetBurn{}",
            match self.kind {
                Kind::Availability => "Availability",
                Kind::Latency => "Latency",
            },
            tier.suffix
        );
        let burn = number(tier.burn);
        let b = number(self.budget());
        let own = self.own_series();
        let over = number(tier.burn * self.budget() * 100.0);
        let consumed = number(tier.burn * tier.long(p).as_secs_f64() / p.as_secs_f64() * 100.0);
        let exhausted = span_words(Duration::from_secs_f64(p.as_secs_f64() / tier.burn));
        let (what, slo) = match self.kind {
            Kind::Availability => (
                "failed (5xx or proxy error)".to_string(),
                format!("{}%, error budget {}%", number(self.objective.availability), number(self.budget() * 100.0)),
            ),
            Kind::Latency => (
                format!("took longer than {}", self.threshold()),
                format!(
                    "{}% within {}, budget {}%",
                    number(self.objective.latency_target),
                    self.threshold(),
                    number(self.budget() * 100.0)
                ),
            ),
        };
        let objective = match &self.objective.name {
            Some(n) => format!("{n} "),
            None => String::new(),
        };
        let _ = write!(
            out,
            "\n      - alert: {name}\n        # {burn}x the budget rate over {long} and over {short} ({kind}).\n        expr: |\n          {rec}{long}{own} > ({burn} * {b})\n          and\n          {rec}{short}{own} > ({burn} * {b})\n        for: {for_}\n        labels:\n          severity: {sev}\n          slo: {word}\n",
            kind = if tier.pages() { "page" } else { "ticket" },
            rec = self.record(),
            for_ = prom_duration(tier.for_(p)),
            sev = tier.severity,
            word = self.word(),
        );
        if let Some(name) = &self.objective.name {
            // Its own label too: the same alert of two objectives is one rule to promtool's lint.
            let _ = writeln!(out, "          objective: {name}");
        }
        let _ = write!(
            out,
            "        annotations:\n          summary: \"{WHO} in {WHERE}: {objective}{word} error budget burning at over {burn}x the sustainable rate\"\n          description: \"{{{{ $value | humanizePercentage }}}} of {req} (namespace {WHERE}) {what} over the last {long}, and more than {over}% over the last {short}: over {burn}x the rate the {objective}{word} SLO ({slo}) allows. At {burn}x, {consumed}% of the {period} error budget goes in {long} and all of it in {exhausted}.\"\n          runbook_url: \"{RUNBOOKS}#{anchor}\"\n",
            word = self.word(),
            req = self.requests(),
            period = period_adjective(p),
            anchor = name.to_lowercase(),
        );
    }

    fn group(&self, out: &mut String) {
        let _ = write!(out, "  - name: {}\n    rules:\n", self.group_name());
        for w in windows(self.period) {
            let w = prom_duration(w);
            let _ = writeln!(out, "      - record: {}{w}", self.record());
            if let Some(name) = &self.objective.name {
                let _ = writeln!(out, "        labels:\n          objective: {name}");
            }
            out.push_str("        expr: |\n");
            for line in self.ratio_expr(&w).lines() {
                let _ = writeln!(out, "          {line}");
            }
        }
        for tier in &TIERS {
            self.alert(tier, out);
        }
    }
}

/// The `groups:` of the SLO rules, two groups (availability, latency) per objective; refused
/// naming the key when a latency threshold is not a bucket of `buckets`.
pub fn groups(slos: &Slos, buckets: &[f64]) -> Result<String, String> {
    let mut out = String::from("groups:\n");
    for (i, o) in slos.objectives.iter().enumerate() {
        let le = bucket_at(buckets, o.latency_threshold).ok_or_else(|| {
            format!(
                "{}.latency.threshold: {} is not a bucket of duration_buckets",
                objective_key(slos, i),
                humantime::format_duration(o.latency_threshold)
            )
        })?;
        if i > 0 {
            out.push('\n');
        }
        for (j, kind) in [Kind::Availability, Kind::Latency].into_iter().enumerate() {
            if j > 0 {
                out.push('\n');
            }
            Sli { kind, objective: o, le: le.clone(), period: slos.period }.group(&mut out);
        }
    }
    Ok(out)
}

/// The key an objective's settings are under: `slo`, or `slo.objectives[i]`.
pub fn objective_key(slos: &Slos, i: usize) -> String {
    match slos.objectives.get(i).and_then(|o| o.name.as_ref()) {
        Some(_) => format!("slo.objectives[{i}]"),
        None => "slo".to_string(),
    }
}

/// The rule file: a header saying what the rules are for, then [`groups`].
pub fn rule_file(slos: &Slos, buckets: &[f64]) -> Result<String, String> {
    let groups = groups(slos, buckets)?;
    Ok(header(slos) + "\n" + &groups)
}

/// The same groups as a prometheus-operator `PrometheusRule` named `name` in `namespace`.
pub fn prometheus_rule(slos: &Slos, buckets: &[f64], name: &str, namespace: &str) -> Result<String, String> {
    let groups = groups(slos, buckets)?;
    let mut out = header(slos);
    let _ = write!(
        out,
        "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app.kubernetes.io/name: redline\n    app.kubernetes.io/component: slo-rules\nspec:\n"
    );
    for line in groups.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "  {line}");
        }
    }
    Ok(out)
}

/// The comment that opens the generated file.
fn header(slos: &Slos) -> String {
    let p = slos.period;
    let mut h = String::new();
    let _ = writeln!(
        h,
        "# GENERATED by `redline rules slo` from the sidecar configuration's `slo:` section: edit the\n\
         # configuration, not this file. Multi-window, multi-burn-rate alerts as in the Google SRE\n\
         # workbook (\"Alerting on SLOs\", table 5-8) over a {} SLO period (`slo.period`):\n#",
        period_adjective(p).trim_end()
    );
    for (i, o) in slos.objectives.iter().enumerate() {
        let name = o.name.as_deref().map_or(String::new(), |n| format!(" ({n})"));
        let scope =
            if o.routes.is_empty() { "every route".to_string() } else { format!("routes {}", o.routes.join(", ")) };
        if i > 0 {
            h.push_str("#\n");
        }
        let _ = writeln!(
            h,
            "#   availability{name}  {}% of requests succeed (error budget {}), {scope}\n\
             #   latency{name}       {}% of requests finish within {}s (error budget {}; the le=\"{}\" bucket)",
            number(o.availability),
            number(budget(o.availability)),
            number(o.latency_target),
            number(o.latency_threshold.as_secs_f64()),
            number(budget(o.latency_target)),
            le_label(o.latency_threshold.as_secs_f64()),
        );
    }
    h.push_str(
        "#\n\
         # Failed = the service's failure: error_type!~\"|client_.+|shutdown\" (a 5xx or a proxy error;\n\
         # 4xx, client_* and shutdown are not failures but count in the total: no client can spend\n\
         # the budget). Slow = above the bucket at the threshold, failed requests included (a 30s\n\
         # timeout is slow for the user too). redline adds the threshold's bucket to its default\n\
         # duration_buckets; with custom buckets the threshold must be one of them.\n\
         #\n\
         #   alert                  long  short  burn  for  severity\n",
    );
    for t in &TIERS {
        let _ = writeln!(
            h,
            "#   ...BudgetBurn{:<9} {:<5} {:<6} {:<5} {:<4} {}",
            t.suffix,
            prom_duration(t.long(p)),
            prom_duration(t.short(p)),
            number(t.burn),
            prom_duration(t.for_(p)),
            t.severity
        );
    }
    let _ = write!(
        h,
        "#\n\
         # Both windows must be over the threshold: the long one proves that a real share of the\n\
         # budget is being spent, the short one (1/12 of the long) makes the alert resolve soon after\n\
         # the problem is fixed. Alert names keep the 30-day long window whatever the period.\n\
         #\n\
         # Aggregation is `sum by (service, namespace)`: in the sidecar (no such labels; they are\n\
         # external labels) and in a central Prometheus (one series per service). Annotations print\n\
         # `{{{{ $labels.service }}}}{{{{ $externalLabels.service }}}}`: one of the two is set in either case.\n\
         #\n\
         # History: the longest window is {}. The sidecar evaluates these rules only when `slo` is\n\
         # configured and `retention` keeps that much; otherwise evaluate this file in Prometheus.\n\
         # With no traffic at all the ratios are NaN, and NaN never crosses a threshold.\n",
        prom_duration(longest_window(p))
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_slos() -> Slos {
        Slos {
            objectives: vec![Objective {
                name: None,
                routes: vec![],
                availability: 99.9,
                latency_threshold: Duration::from_millis(300),
                latency_target: 99.0,
            }],
            period: DEFAULT_PERIOD,
        }
    }

    const OTEL: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

    #[test]
    fn the_default_period_gives_the_workbooks_windows() {
        let w: Vec<String> = windows(DEFAULT_PERIOD).into_iter().map(prom_duration).collect();
        assert_eq!(w, ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]);
        let tiers: Vec<(String, String, String)> = TIERS
            .iter()
            .map(|t| {
                (
                    prom_duration(t.long(DEFAULT_PERIOD)),
                    prom_duration(t.short(DEFAULT_PERIOD)),
                    prom_duration(t.for_(DEFAULT_PERIOD)),
                )
            })
            .collect();
        assert_eq!(
            tiers,
            [("1h", "5m", "2m"), ("6h", "30m", "15m"), ("1d", "2h", "1h"), ("3d", "6h", "3h")].map(|(a, b, c)| (
                a.to_string(),
                b.to_string(),
                c.to_string()
            ))
        );
        let half_day: Vec<String> = windows(Duration::from_secs(12 * 3600)).into_iter().map(prom_duration).collect();
        assert_eq!(half_day, ["5s", "30s", "1m", "2m", "6m", "24m", "1h12m"]);
    }

    #[test]
    fn numbers_and_budgets_print_without_float_noise() {
        assert_eq!(number(budget(99.9)), "0.001");
        assert_eq!(number(budget(99.5)), "0.005");
        assert_eq!(number(budget(99.0)), "0.01");
        assert_eq!(number(14.4 * budget(99.9) * 100.0), "1.44");
        assert_eq!(number(6.0), "6");
        assert_eq!(span_words(Duration::from_secs_f64(30.0 * 86_400.0 / 14.4)), "about 2 days");
        assert_eq!(span_words(Duration::from_secs(5 * 86_400)), "5 days");
        assert_eq!(period_adjective(DEFAULT_PERIOD), "30-day");
        assert_eq!(period_adjective(Duration::from_secs(12 * 3600)), "12-hour");
    }

    #[test]
    fn the_threshold_bucket_is_added_to_the_default_buckets_only() {
        let t = [("slo.latency.threshold".to_string(), Duration::from_millis(300))];
        let b = histogram_buckets(&OTEL, true, &t).expect("added");
        assert_eq!(b.len(), 15);
        assert_eq!(b[6..9], [0.25, 0.3, 0.5]);
        let err = histogram_buckets(&[0.1, 0.5], false, &t).expect_err("custom buckets without 0.3");
        assert!(
            err.starts_with("slo.latency.threshold: 300ms is not a bucket of duration_buckets [0.1, 0.5]"),
            "{err}"
        );
        let ok = histogram_buckets(&[0.1, 0.3], false, &t).expect("0.3 is a bound");
        assert_eq!(ok, [0.1, 0.3]);
        let half = [("k".to_string(), Duration::from_millis(500))];
        assert_eq!(histogram_buckets(&OTEL, true, &half).expect("present"), OTEL);
    }

    #[test]
    fn rules_carry_the_budget_and_the_thresholds_bucket() {
        let mut slos = default_slos();
        slos.objectives[0].availability = 99.5;
        slos.objectives[0].latency_threshold = Duration::from_millis(500);
        slos.objectives[0].latency_target = 95.0;
        let text = groups(&slos, &OTEL).expect("rules");
        assert!(text.contains("redline:slo_errors:ratio_rate1h > (14.4 * 0.005)"), "{text}");
        assert!(text.contains("redline:slo_slow:ratio_rate5m > (14.4 * 0.05)"), "{text}");
        assert!(text.contains(r#"http_server_request_duration_seconds_bucket{le="0.5"}[3d]"#), "{text}");
        assert!(text.contains("took longer than 0.5s over the last 1h, and more than 72% over the last 5m"), "{text}");
        assert!(text.contains("availability SLO (99.5%, error budget 0.5%)"), "{text}");
        assert_eq!(text.matches("- record:").count(), 14);
        assert_eq!(text.matches("- alert:").count(), 8);
        let err = groups(&default_slos(), &OTEL).expect_err("no 0.3 bucket");
        assert!(err.starts_with("slo.latency.threshold: 300ms is not a bucket"), "{err}");
    }

    #[test]
    fn named_objectives_select_their_routes_and_label_their_series() {
        let mut slos = default_slos();
        slos.objectives[0].latency_threshold = Duration::from_millis(250);
        let mut orders = slos.objectives[0].clone();
        orders.name = Some("orders".into());
        orders.routes = vec!["/orders/{id}".into(), "/cart".into()];
        slos.objectives.push(orders);
        let text = groups(&slos, &OTEL).expect("rules");
        assert!(text.contains("  - name: redline-slo-orders-latency\n"), "{text}");
        assert!(
            text.contains(r#"rate(http_server_request_duration_seconds_count{error_type!~"|client_.+|shutdown",http_route=~"/orders/\\{id\\}|/cart"}[5m])"#),
            "{text}"
        );
        assert!(text.contains("redline:slo_errors:ratio_rate1h{objective=\"orders\"} > (14.4 * 0.001)"), "{text}");
        assert!(text.contains("        labels:\n          objective: orders\n"), "{text}");
        assert!(text.contains("          slo: latency\n          objective: orders\n        annotations:"), "{text}");
        assert_eq!(objective_key(&slos, 1), "slo.objectives[1]");
    }

    #[test]
    fn objectives_and_periods_are_checked_naming_the_key() {
        let mut o = default_slos().objectives.remove(0);
        o.name = Some("bad name".into());
        let err = check_objective("slo.objectives[0]", &o).expect_err("space");
        assert!(err.starts_with("slo.objectives[0].name: expected letters"), "{err}");
        let err = check_period("slo.period", Duration::from_secs(3600)).expect_err("too short");
        assert!(err.starts_with("slo.period: expected at least 2h24m"), "{err}");
        assert!(check_period("slo.period", Duration::from_secs(12 * 3600)).is_ok());
    }

    #[test]
    fn a_prometheus_rule_holds_the_same_groups() {
        let buckets = histogram_buckets(&OTEL, true, &[("k".into(), Duration::from_millis(300))]).expect("b");
        let file = rule_file(&default_slos(), &buckets).expect("file");
        let cr = prometheus_rule(&default_slos(), &buckets, "redline-slo", "monitoring").expect("cr");
        assert!(cr.contains("kind: PrometheusRule\n"), "{cr}");
        let groups_of_file = file.split_once("\ngroups:\n").expect("groups").1;
        let groups_of_cr = cr.split_once("\nspec:\n  groups:\n").expect("spec.groups").1;
        let unindented: Vec<&str> = groups_of_cr.lines().map(|l| l.strip_prefix("  ").unwrap_or(l)).collect();
        assert_eq!(unindented.join("\n") + "\n", groups_of_file);
    }
}
