//! Quantile estimation as in Prometheus's promql/quantile.go: `bucketQuantile` for classic
//! histograms and the interpolating `quantile` used by `quantile` and `quantile_over_time`.

use super::gomath;

/// Go's sort order for `vectorByValueHeap`: NaN sorts before everything.
fn nan_first(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// The q-quantile of `values` with linear interpolation between the closest ranks
/// (rank q·(n-1)); NaN for no values or q = NaN, ±Inf for q outside [0, 1].
pub(crate) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| nan_first(*a, *b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = gomath::max(0.0, rank.floor());
    let upper = gomath::min(n - 1.0, lower + 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// One classic histogram bucket: upper bound (`le`) and cumulative count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    pub upper_bound: f64,
    pub count: f64,
}

/// Prometheus 2.42 `bucketQuantile`: buckets sorted by bound, equal bounds merged, counts raised
/// to the running maximum; linear interpolation inside the bucket holding rank q·total.
pub(crate) fn bucket_quantile(q: f64, mut buckets: Vec<Bucket>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.upper_bound.partial_cmp(&b.upper_bound).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    let mut buckets = coalesce(buckets);
    ensure_monotonic(&mut buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // sort.Search over all but the +Inf bucket: the first bucket whose count reaches the rank.
    let b = buckets[..buckets.len() - 1].partition_point(|bk| bk.count < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].upper_bound;
    }
    if b == 0 && buckets[0].upper_bound <= 0.0 {
        return buckets[0].upper_bound;
    }
    let mut bucket_start = 0.0;
    let bucket_end = buckets[b].upper_bound;
    let mut count = buckets[b].count;
    if b > 0 {
        bucket_start = buckets[b - 1].upper_bound;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Merges buckets with the same upper bound (e.g. `le="1"` and `le="1.0"`), adding their counts.
fn coalesce(buckets: Vec<Bucket>) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match out.last_mut() {
            Some(last) if last.upper_bound == b.upper_bound => last.count += b.count,
            _ => out.push(b),
        }
    }
    out
}

/// Raises each count to the maximum seen so far, so that scrape races between bucket series do
/// not produce negative bucket populations.
fn ensure_monotonic(buckets: &mut [Bucket]) {
    let mut max = f64::NEG_INFINITY;
    for b in buckets {
        if b.count > max {
            max = b.count;
        } else if b.count < max {
            b.count = max;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bk(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs.iter().map(|&(upper_bound, count)| Bucket { upper_bound, count }).collect()
    }

    #[test]
    fn bucket_quantile_interpolates() {
        let b = bk(&[(1.0, 10.0), (2.0, 30.0), (4.0, 40.0), (f64::INFINITY, 40.0)]);
        assert_eq!(bucket_quantile(0.5, b.clone()), 1.5);
        assert_eq!(bucket_quantile(0.9, b.clone()), 3.2);
        assert_eq!(bucket_quantile(1.0, b.clone()), 4.0);
        assert_eq!(bucket_quantile(1.5, b.clone()), f64::INFINITY);
        assert_eq!(bucket_quantile(-0.1, b), f64::NEG_INFINITY);
    }

    #[test]
    fn bucket_quantile_edge_cases() {
        // rank in the +Inf bucket: the highest finite bound
        assert_eq!(bucket_quantile(0.6, bk(&[(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 40.0)])), 2.0);
        // unsorted input, non-monotonic counts raised to 10 10 15 20
        let b = bk(&[(f64::INFINITY, 20.0), (2.0, 5.0), (1.0, 10.0), (4.0, 15.0)]);
        assert_eq!(bucket_quantile(0.6, b), 2.8);
        // lowest bucket with a bound <= 0 returns that bound
        assert_eq!(bucket_quantile(0.25, bk(&[(0.0, 5.0), (10.0, 10.0), (f64::INFINITY, 10.0)])), 0.0);
        assert!(bucket_quantile(0.5, bk(&[(1.0, 5.0), (2.0, 10.0)])).is_nan());
        assert!(bucket_quantile(0.5, bk(&[(1.0, 0.0), (f64::INFINITY, 0.0)])).is_nan());
        assert!(bucket_quantile(0.5, bk(&[(f64::INFINITY, 10.0)])).is_nan());
        assert!(bucket_quantile(f64::NAN, bk(&[(1.0, 1.0), (f64::INFINITY, 2.0)])).is_nan());
        // equal bounds are merged
        assert_eq!(bucket_quantile(0.5, bk(&[(1.0, 5.0), (1.0, 5.0), (f64::INFINITY, 20.0)])), 1.0);
    }

    #[test]
    fn quantile_interpolates_ranks() {
        let v = vec![5.0, 10.0, 20.0, 30.0, 40.0, 45.0];
        assert_eq!(quantile(0.5, v.clone()), 25.0);
        assert_eq!(quantile(0.0, v.clone()), 5.0);
        assert_eq!(quantile(1.0, v.clone()), 45.0);
        assert_eq!(quantile(2.0, v.clone()), f64::INFINITY);
        assert!(quantile(f64::NAN, v).is_nan());
        assert!(quantile(0.5, vec![]).is_nan());
    }
}
