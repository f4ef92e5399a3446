//! A simple in-memory [`Storage`] for `rules test` and tests, and the label matching every
//! storage shares (missing labels match as the empty string, as in Prometheus).

use super::labels::get;
use super::{Labels, Series, Storage, Window};
use promql_parser::label::{Matcher, Matchers};

/// True when `labels` satisfy the selector: all plain matchers, or one of the `or` groups.
pub fn matches_all(matchers: &Matchers, labels: &Labels) -> bool {
    let all = |ms: &[Matcher]| ms.iter().all(|m| m.is_match(get(labels, &m.name)));
    if matchers.or_matchers.is_empty() {
        all(&matchers.matchers)
    } else {
        matchers.or_matchers.iter().any(|group| all(group))
    }
}

/// Series kept sorted by labels (the order Prometheus's index returns them in), each with
/// time-ordered samples.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    series: Vec<Series>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        MemoryStorage { series: Vec::new() }
    }

    /// Adds samples to the series with exactly these labels, creating it if needed. Samples are
    /// merged in time order; a sample at an existing timestamp replaces the old one.
    pub fn add(&mut self, labels: Labels, samples: Vec<(i64, f64)>) {
        let idx = match self.series.binary_search_by(|s| s.labels.cmp(&labels)) {
            Ok(i) => i,
            Err(i) => {
                self.series.insert(i, Series { labels, samples: Vec::new() });
                i
            }
        };
        let existing = &mut self.series[idx].samples;
        let already_sorted = existing.last().is_none_or(|&(last, _)| samples.first().is_none_or(|&(t, _)| t > last))
            && samples.windows(2).all(|w| w[0].0 < w[1].0);
        existing.extend(samples);
        if !already_sorted {
            // Stable sort keeps insertion order among equal timestamps, so keeping the last of
            // each run makes the newest write win.
            existing.sort_by_key(|&(t, _)| t);
            let mut merged: Vec<(i64, f64)> = Vec::with_capacity(existing.len());
            for &(t, v) in existing.iter() {
                match merged.last_mut() {
                    Some(last) if last.0 == t => last.1 = v,
                    _ => merged.push((t, v)),
                }
            }
            *existing = merged;
        }
    }

    /// All series, sorted by labels.
    pub fn series(&self) -> &[Series] {
        &self.series
    }
}

impl Storage for MemoryStorage {
    fn select(&self, matchers: &Matchers, start_ms: i64, end_ms: i64) -> Vec<Series> {
        self.series
            .iter()
            .filter(|s| matches_all(matchers, &s.labels))
            .filter_map(|s| {
                let lo = s.samples.partition_point(|&(t, _)| t < start_ms);
                let hi = s.samples.partition_point(|&(t, _)| t <= end_ms);
                (lo < hi).then(|| Series { labels: s.labels.clone(), samples: s.samples[lo..hi].to_vec() })
            })
            .collect()
    }

    fn visit<'s>(&'s self, matchers: &Matchers, start_ms: i64, end_ms: i64, f: &mut dyn FnMut(&'s Labels, Window<'_>)) {
        for s in self.series.iter().filter(|s| matches_all(matchers, &s.labels)) {
            let lo = s.samples.partition_point(|&(t, _)| t < start_ms);
            let hi = s.samples.partition_point(|&(t, _)| t <= end_ms);
            if lo < hi {
                f(&s.labels, Window { head: &s.samples[lo..hi], tail: &[], stale_free: false, non_decreasing: false });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::promql::labels_from_pairs;
    use promql_parser::label::MatchOp;

    #[test]
    fn add_merges_and_select_windows() {
        let mut st = MemoryStorage::new();
        let l = labels_from_pairs([("__name__", "x"), ("a", "1")]);
        st.add(l.clone(), vec![(0, 1.0), (60_000, 2.0)]);
        st.add(l.clone(), vec![(30_000, 1.5), (60_000, 3.0)]);
        st.add(labels_from_pairs([("__name__", "y")]), vec![(0, 9.0)]);
        let m = Matchers::new(vec![Matcher::new(MatchOp::Equal, "__name__", "x")]);
        let got = st.select(&m, 0, 60_000);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples, vec![(0, 1.0), (30_000, 1.5), (60_000, 3.0)]);
        assert_eq!(st.select(&m, 1, 29_999).len(), 0);
        // a="" matches series without the label
        let m = Matchers::new(vec![Matcher::new(MatchOp::Equal, "b", "")]);
        assert_eq!(st.select(&m, 0, 0).len(), 2);
    }
}
