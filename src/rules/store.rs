//! The sidecar's own time series for rule evaluation: its metrics sampled every
//! `sample_interval`, plus what recording rules and ALERTS write back, kept only as far back
//! as the loaded rules read and only for the series some rule selects.

use std::collections::{BTreeMap, HashMap, VecDeque};

use promql_parser::label::{MatchOp, Matchers};

use super::group::RuleStorage;
use super::promql::{Labels, METRIC_NAME, Series, Storage, Window, is_stale, matches_all, stale_nan};
use crate::telemetry::metrics::CapturedSample;

/// The selectors of every loaded rule: a series is kept only when one of them matches it.
#[derive(Debug, Default)]
pub struct SeriesFilter {
    selectors: Vec<Matchers>,
}

impl SeriesFilter {
    pub fn new(selectors: Vec<Matchers>) -> Self {
        SeriesFilter { selectors }
    }

    /// Whether any selector could match a series of this name (checked before labels are
    /// built, so unwanted families cost nothing to sample).
    pub fn wants_name(&self, name: &str) -> bool {
        self.selectors.iter().any(|m| m.matchers.iter().filter(|m| m.name == METRIC_NAME).all(|m| m.is_match(name)))
    }

    pub fn wants(&self, labels: &Labels) -> bool {
        self.selectors.iter().any(|m| matches_all(m, labels))
    }
}

/// One series: its samples, and the sampling round that last saw it (0: written by rules).
#[derive(Debug, Default)]
struct SeriesData {
    samples: VecDeque<(i64, f64)>,
    sampled_round: u64,
    /// How many of the samples are staleness markers: with none, evaluation need not look.
    stale: u32,
    /// How many samples are below the one before them: with none, a counter has not reset and
    /// rate() need not scan for resets.
    drops: u32,
}

impl SeriesData {
    /// Appends in time order; a sample at an existing timestamp replaces the old value.
    fn push(&mut self, t_ms: i64, value: f64) {
        let samples = &mut self.samples;
        let (replaced, appended) = match samples.back_mut() {
            Some(back) if back.0 == t_ms => (Some(std::mem::replace(&mut back.1, value)), false),
            Some(back) if back.0 > t_ms => {
                let at = samples.partition_point(|&(t, _)| t < t_ms);
                match samples.get_mut(at) {
                    Some(s) if s.0 == t_ms => (Some(std::mem::replace(&mut s.1, value)), false),
                    _ => {
                        samples.insert(at, (t_ms, value));
                        (None, false)
                    }
                }
            }
            _ => {
                samples.push_back((t_ms, value));
                (None, true)
            }
        };
        if replaced.is_some_and(is_stale) {
            self.stale -= 1;
        }
        if is_stale(value) {
            self.stale += 1;
        }
        if appended {
            let n = self.samples.len();
            if n >= 2 && self.samples[n - 1].1 < self.samples[n - 2].1 {
                self.drops += 1;
            }
        } else {
            // A rewrite inside the history (rule output evaluated out of order): rare, recount.
            self.drops = count_drops(self.samples.iter());
        }
    }

    /// Drops the samples before `oldest_ms`.
    fn drop_before(&mut self, oldest_ms: i64) {
        while let Some(&(t, v)) = self.samples.front() {
            if t >= oldest_ms {
                break;
            }
            self.samples.pop_front();
            if is_stale(v) {
                self.stale -= 1;
            }
            if self.samples.front().is_some_and(|&(_, next)| next < v) {
                self.drops -= 1;
            }
        }
    }
}

type SeriesMap = BTreeMap<Labels, SeriesData>;

/// Series grouped by metric name; within a name, ordered by labels, which is the order a
/// Prometheus index returns them in (evaluation results depend on it through float sums).
#[derive(Debug, Default)]
pub struct SampleStore {
    by_name: HashMap<String, SeriesMap>,
    /// Samples older than this (ms before the newest ingest) are dropped.
    horizon_ms: i64,
    /// Sampling rounds so far; a series seen in the previous round but not in this one gets a
    /// staleness marker, as a Prometheus scrape writes one.
    round: u64,
}

impl SampleStore {
    pub fn new(horizon_ms: i64) -> Self {
        SampleStore { horizon_ms, ..Default::default() }
    }

    pub fn set_horizon(&mut self, horizon_ms: i64) {
        self.horizon_ms = horizon_ms;
    }

    pub fn horizon_ms(&self) -> i64 {
        self.horizon_ms
    }

    /// Adds one sampling round at `t_ms`: the wanted samples are appended, series sampled last
    /// round but missing now get a staleness marker, and history past the horizon is dropped.
    pub fn ingest(&mut self, t_ms: i64, samples: Vec<CapturedSample>, filter: &SeriesFilter) {
        self.round += 1;
        let round = self.round;
        for s in samples {
            let mut labels: Labels = Vec::with_capacity(s.labels.len() + 1);
            // An empty label value is the same as no label, as in a Prometheus scrape.
            labels.extend(s.labels.into_iter().filter(|(_, v)| !v.is_empty()));
            labels.push((METRIC_NAME.to_string(), s.name));
            labels.sort();
            if !filter.wants(&labels) {
                continue;
            }
            let series = self.series_mut(labels);
            if series.sampled_round == round {
                continue; // the same series twice in one exposition: keep the first, like a scrape
            }
            series.sampled_round = round;
            series.push(t_ms, s.value);
        }
        for map in self.by_name.values_mut() {
            for data in map.values_mut() {
                if data.sampled_round + 1 == round {
                    data.push(t_ms, stale_nan());
                }
            }
        }
        self.trim(t_ms - self.horizon_ms);
    }

    /// The series with these labels, created empty if new (the name is looked up without
    /// allocating: this runs for every sample of every round).
    fn series_mut(&mut self, labels: Labels) -> &mut SeriesData {
        let name = labels.iter().find(|(k, _)| k == METRIC_NAME).map_or("", |(_, v)| v.as_str());
        if !self.by_name.contains_key(name) {
            self.by_name.insert(name.to_string(), SeriesMap::new());
        }
        let map = self.by_name.get_mut(name).expect("inserted above");
        map.entry(labels).or_default()
    }

    /// Drops samples before `oldest_ms` and series left without samples.
    pub fn trim(&mut self, oldest_ms: i64) {
        self.by_name.retain(|_, series| {
            series.retain(|_, data| {
                data.drop_before(oldest_ms);
                // Keeps every window one slice, so evaluation reads it in place; the ring
                // wraps only once per (capacity - length) appends, so this rarely moves anything.
                if !data.samples.as_slices().1.is_empty() {
                    data.samples.make_contiguous();
                }
                !data.samples.is_empty()
            });
            !series.is_empty()
        });
    }

    /// Number of series and of samples held, for the sidecar's own metrics.
    pub fn size(&self) -> (usize, usize) {
        let series = self.by_name.values().map(|m| m.len()).sum();
        let samples = self.by_name.values().flat_map(|m| m.values()).map(|s| s.samples.len()).sum();
        (series, samples)
    }
}

/// How many samples are below the one before them.
fn count_drops<'s>(samples: impl Iterator<Item = &'s (i64, f64)>) -> u32 {
    let mut prev: Option<f64> = None;
    let mut n = 0;
    for &(_, v) in samples {
        if prev.is_some_and(|p| v < p) {
            n += 1;
        }
        prev = Some(v);
    }
    n
}

/// The samples in [start_ms, end_ms] as the ring buffer's (at most two) contiguous runs.
fn window(data: &SeriesData, start_ms: i64, end_ms: i64) -> Window<'_> {
    let samples = &data.samples;
    // Rules read up to now: the window usually ends at the newest sample, and starts near it.
    let hi = match samples.back() {
        Some(&(t, _)) if t <= end_ms => samples.len(),
        _ => samples.partition_point(|&(t, _)| t <= end_ms),
    };
    let lo = first_at_or_after(samples, start_ms, hi);
    let (a, b) = samples.as_slices();
    let cut =
        |s: &[(i64, f64)], from: usize, to: usize| -> std::ops::Range<usize> { from.min(s.len())..to.min(s.len()) };
    Window {
        head: &a[cut(a, lo, hi)],
        tail: &b[cut(b, lo.saturating_sub(a.len()), hi.saturating_sub(a.len()))],
        stale_free: data.stale == 0,
        non_decreasing: data.drops == 0,
    }
}

/// The index of the first sample at or after `t_ms` among the first `hi`, searched from the
/// back (galloping), since windows are short next to the history kept.
fn first_at_or_after(samples: &VecDeque<(i64, f64)>, t_ms: i64, hi: usize) -> usize {
    let mut step = 1;
    let mut upper = hi; // samples[upper..hi] are all >= t_ms
    while upper > 0 {
        let probe = upper.saturating_sub(step);
        if samples[probe].0 < t_ms {
            // The answer lies in (probe, upper]: binary search there.
            let (mut lo, mut hi) = (probe + 1, upper);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if samples[mid].0 < t_ms { lo = mid + 1 } else { hi = mid }
            }
            return lo;
        }
        upper = probe;
        step *= 2;
    }
    0
}

/// Calls `f` for each series of `series` matching `matchers` with samples in the window.
fn scan<'s>(
    series: &'s SeriesMap,
    matchers: &Matchers,
    start_ms: i64,
    end_ms: i64,
    f: &mut dyn FnMut(&'s Labels, Window<'_>),
) {
    for (labels, data) in series {
        if matches_all(matchers, labels) {
            let w = window(data, start_ms, end_ms);
            if !w.is_empty() {
                f(labels, w);
            }
        }
    }
}

impl SampleStore {
    /// Visits the matching series: by name when the selector names one exactly (then only the
    /// other matchers are checked), else every name, in label order across names.
    fn visit_matching<'s>(
        &'s self,
        matchers: &Matchers,
        start_ms: i64,
        end_ms: i64,
        f: &mut dyn FnMut(&'s Labels, Window<'_>),
    ) {
        let exact_name =
            matchers.or_matchers.is_empty().then_some(()).and_then(|()| {
                matchers.matchers.iter().find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
            });
        match exact_name {
            Some(m) => {
                if let Some(series) = self.by_name.get(&m.value) {
                    // Every series here has that name: match on the other labels only.
                    let rest =
                        Matchers::new(matchers.matchers.iter().filter(|x| x.name != METRIC_NAME).cloned().collect());
                    scan(series, &rest, start_ms, end_ms, f);
                }
            }
            None => {
                let mut hits: Vec<(&'s Labels, Window<'s>)> = Vec::new();
                for series in self.by_name.values() {
                    for (labels, data) in series {
                        if matches_all(matchers, labels) {
                            let w = window(data, start_ms, end_ms);
                            if !w.is_empty() {
                                hits.push((labels, w));
                            }
                        }
                    }
                }
                hits.sort_by(|a, b| a.0.cmp(b.0));
                for (labels, w) in hits {
                    f(labels, w);
                }
            }
        }
    }
}

impl Storage for SampleStore {
    fn select(&self, matchers: &Matchers, start_ms: i64, end_ms: i64) -> Vec<Series> {
        let mut out = Vec::new();
        self.visit_matching(matchers, start_ms, end_ms, &mut |labels, w| {
            out.push(Series { labels: labels.clone(), samples: w.iter().copied().collect() });
        });
        out
    }

    fn visit<'s>(&'s self, matchers: &Matchers, start_ms: i64, end_ms: i64, f: &mut dyn FnMut(&'s Labels, Window<'_>)) {
        self.visit_matching(matchers, start_ms, end_ms, f);
    }
}

impl RuleStorage for SampleStore {
    fn append(&mut self, labels: Labels, t_ms: i64, value: f64) {
        self.series_mut(labels).push(t_ms, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::promql::is_stale;

    fn filter(exprs: &[&str]) -> SeriesFilter {
        let selectors = exprs
            .iter()
            .flat_map(|e| super::super::promql::selectors(&promql_parser::parser::parse(e).unwrap()))
            .collect();
        SeriesFilter::new(selectors)
    }

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> CapturedSample {
        CapturedSample {
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value,
        }
    }

    fn all(store: &SampleStore, q: &str) -> Vec<Series> {
        let e = promql_parser::parser::parse(q).unwrap();
        let m = super::super::promql::selectors(&e).remove(0);
        store.select(&m, i64::MIN, i64::MAX)
    }

    #[test]
    fn keeps_only_selected_series_and_marks_vanished_ones_stale() {
        let f = filter(&["rate(req_total{code=~\"5..\"}[5m])"]);
        assert!(f.wants_name("req_total") && !f.wants_name("other_total"));
        let mut store = SampleStore::new(600_000);
        store.ingest(
            1_000,
            vec![
                sample("req_total", &[("code", "500")], 1.0),
                sample("req_total", &[("code", "200")], 5.0),
                sample("other_total", &[], 1.0),
            ],
            &f,
        );
        store.ingest(2_000, vec![sample("req_total", &[("code", "502")], 1.0)], &f);
        let got = all(&store, "req_total");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].labels, vec![("__name__".into(), "req_total".into()), ("code".into(), "500".into())]);
        assert_eq!(got[0].samples[0], (1_000, 1.0));
        assert!(is_stale(got[0].samples[1].1) && got[0].samples[1].0 == 2_000);
        assert_eq!(got[1].samples, vec![(2_000, 1.0)]);
        assert_eq!(store.size(), (2, 3));
    }

    #[test]
    fn windows_over_a_wrapped_ring_buffer_are_the_samples_in_range() {
        let mut ring: VecDeque<(i64, f64)> = VecDeque::with_capacity(8);
        for t in 0..8 {
            ring.push_back((t * 10, t as f64));
        }
        for t in 8..13 {
            ring.pop_front();
            ring.push_back((t * 10, t as f64));
        }
        assert!(!ring.as_slices().1.is_empty(), "the buffer wraps");
        for start in -5..140 {
            for end in start - 1..140 {
                let want: Vec<(i64, f64)> = ring.iter().copied().filter(|&(t, _)| t >= start && t <= end).collect();
                let data = SeriesData { samples: ring.clone(), ..Default::default() };
                let got: Vec<(i64, f64)> = window(&data, start, end).iter().copied().collect();
                assert_eq!(got, want, "[{start}, {end}]");
            }
        }
    }

    #[test]
    fn staleness_markers_are_counted_in_and_out() {
        let mut d = SeriesData::default();
        d.push(10, 1.0);
        d.push(20, stale_nan());
        assert_eq!(d.stale, 1);
        d.push(20, 5.0);
        assert_eq!(d.stale, 0, "a marker replaced by a value");
        assert!(window(&d, 0, 100).stale_free);
        d.push(30, stale_nan());
        d.push(5, stale_nan());
        assert_eq!(d.stale, 2, "one appended, one inserted before the others");
        assert!(!window(&d, 0, 100).stale_free);
        d.drop_before(10);
        assert_eq!(d.stale, 1);
        d.drop_before(31);
        assert_eq!((d.stale, d.samples.len()), (0, 0));
    }

    #[test]
    fn decreases_are_counted_in_and_out() {
        let mut d = SeriesData::default();
        for (t, v) in [(10, 1.0), (20, 5.0), (30, 2.0), (40, 3.0), (50, 3.0)] {
            d.push(t, v);
        }
        assert_eq!(d.drops, 1, "5 -> 2");
        assert!(!window(&d, 0, 100).non_decreasing);
        d.push(35, 0.5);
        assert_eq!(d.drops, 2, "inserted: 2 -> 0.5 (and 0.5 -> 3 is a rise)");
        d.push(35, 4.0);
        assert_eq!(d.drops, 2, "replaced: 2 -> 4 rises, 4 -> 3 drops");
        d.drop_before(25);
        assert_eq!(d.drops, 1, "popping 1 and 5 takes 5 -> 2 with it; 4 -> 3 stays");
        assert_eq!(d.drops, count_drops(d.samples.iter()));
        d.drop_before(36);
        assert_eq!(d.drops, 0, "3, 3 left");
        assert!(window(&d, 0, 100).non_decreasing);
        d.push(60, f64::NAN);
        d.push(70, 1.0);
        assert_eq!(d.drops, count_drops(d.samples.iter()), "NaN compares as no drop, like the reset scan");
    }

    #[test]
    fn drops_history_past_the_horizon_and_empty_series() {
        let f = filter(&["x"]);
        let mut store = SampleStore::new(10_000);
        for t in 0..30 {
            store.ingest(t * 1_000, vec![sample("x", &[("a", "1")], t as f64)], &f);
        }
        let got = all(&store, "x");
        assert_eq!(got[0].samples.first(), Some(&(19_000, 19.0)));
        assert_eq!(got[0].samples.len(), 11);
        store.trim(100_000);
        assert_eq!(store.size(), (0, 0));
    }

    #[test]
    fn rule_output_is_appended_in_time_order_and_regex_names_are_sorted_across_names() {
        let mut store = SampleStore::new(60_000);
        let l = |n: &str| vec![("__name__".to_string(), n.to_string())];
        store.append(l("b"), 2_000, 2.0);
        store.append(l("b"), 1_000, 1.0);
        store.append(l("b"), 2_000, 3.0);
        store.append(l("a"), 1_000, 1.0);
        let got = all(&store, "{__name__=~\"a|b\"}");
        assert_eq!(got.iter().map(|s| s.labels[0].1.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(got[1].samples, vec![(1_000, 1.0), (2_000, 3.0)]);
    }
}
