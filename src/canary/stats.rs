//! The Mann-Whitney U test as `scipy.stats.mannwhitneyu` computes it: average ranks for ties,
//! the normal approximation with tie correction and continuity correction, and the exact null
//! distribution for small samples without ties (scipy's `method="auto"` rule).
//!
//! Written here rather than taken from statrs because statrs computes the normal tail as
//! `1 - cdf` (so every p-value below ~1e-16 becomes 0) and its exact method enumerates every
//! arrangement of the samples, which takes forever at 8 against a few hundred points.

use serde::Serialize;

/// Which difference the test looks for, as scipy's `alternative`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    TwoSided,
    /// `x` tends to be smaller than `y`.
    Less,
    /// `x` tends to be larger than `y`.
    Greater,
}

/// How the p-value is computed, as scipy's `method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Exact when either sample has at most 8 points and there are no ties, else asymptotic.
    #[default]
    Auto,
    Exact,
    Asymptotic,
}

/// The method that was actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodUsed {
    Exact,
    Asymptotic,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub alternative: Alternative,
    pub method: Method,
    /// scipy's `use_continuity` (asymptotic method only).
    pub continuity: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { alternative: Alternative::TwoSided, method: Method::Auto, continuity: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MannWhitney {
    /// U statistic of `x` (scipy's `statistic`).
    pub u1: f64,
    /// U statistic of `y` (`n1 * n2 - u1`).
    pub u2: f64,
    pub p_value: f64,
    pub method: MethodUsed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    #[error("both samples need at least one value")]
    EmptySample,
    #[error("samples must not contain NaN")]
    NaN,
    #[error("the exact method needs samples without ties")]
    ExactWithTies,
    #[error("the exact distribution for samples of {0} and {1} values is too large to compute")]
    ExactTooLarge(usize, usize),
}

/// Largest `n1 * n2` for which the exact distribution is computed (its polynomial has
/// `n1 * n2 + 1` 16-byte coefficients).
const EXACT_MAX_CELLS: usize = 4_000_000;

/// Mann-Whitney U test of `x` against `y`.
pub fn mann_whitney_u(x: &[f64], y: &[f64], options: Options) -> Result<MannWhitney, StatsError> {
    if x.is_empty() || y.is_empty() {
        return Err(StatsError::EmptySample);
    }
    if x.iter().chain(y).any(|v| v.is_nan()) {
        return Err(StatsError::NaN);
    }
    let (n1, n2) = (x.len(), y.len());
    let (r1, ties) = rank_sum(x, y);
    let n1f = n1 as f64;
    let n2f = n2 as f64;
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let u2 = n1f * n2f - u1;
    let (u, factor) = match options.alternative {
        Alternative::Greater => (u1, 1.0),
        Alternative::Less => (u2, 1.0),
        Alternative::TwoSided => (u1.max(u2), 2.0),
    };
    let has_ties = ties.iter().any(|&t| t > 1.0);

    let exact = match options.method {
        Method::Asymptotic => None,
        Method::Exact if has_ties => return Err(StatsError::ExactWithTies),
        Method::Exact => Some(exact_sf(u, n1, n2).ok_or(StatsError::ExactTooLarge(n1, n2))?),
        // scipy's rule; where the exact distribution is out of reach, the approximation is
        // what scipy's answer converges to anyway (that only happens with the other sample
        // in the hundreds of thousands).
        Method::Auto if (n1 > 8 && n2 > 8) || has_ties => None,
        Method::Auto => exact_sf(u, n1, n2),
    };
    let (p, method) = match exact {
        Some(p) => (p, MethodUsed::Exact),
        None => (asymptotic_sf(u, n1f, n2f, &ties, options.continuity), MethodUsed::Asymptotic),
    };
    // NaN (all values equal without continuity correction) stays NaN, as in scipy.
    let p_value = if p.is_nan() { p } else { (p * factor).clamp(0.0, 1.0) };
    Ok(MannWhitney { u1, u2, p_value, method })
}

/// Sum of the (average) ranks of `x` in the pooled sample, and the size of every group of equal
/// values (1 for values without ties), as scipy's `rankdata(..., return_ties=True)`.
fn rank_sum(x: &[f64], y: &[f64]) -> (f64, Vec<f64>) {
    let mut pooled: Vec<(f64, bool)> = x.iter().map(|&v| (v, true)).chain(y.iter().map(|&v| (v, false))).collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut r1 = 0.0;
    let mut ties = Vec::new();
    let mut i = 0;
    while i < pooled.len() {
        // `==`, not total_cmp: -0.0 and 0.0 are one value (they sort next to each other).
        let mut j = i + 1;
        while j < pooled.len() && pooled[j].0 == pooled[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j share their mean.
        let rank = (i + 1 + j) as f64 / 2.0;
        let from_x = pooled[i..j].iter().filter(|p| p.1).count();
        r1 += rank * from_x as f64;
        ties.push((j - i) as f64);
        i = j;
    }
    (r1, ties)
}

/// P(U >= u) under the normal approximation, scipy's `_get_mwu_z` and `ndtr(-z)`.
fn asymptotic_sf(u: f64, n1: f64, n2: f64, ties: &[f64], continuity: bool) -> f64 {
    let mu = n1 * n2 / 2.0;
    let n = n1 + n2;
    let tie_term: f64 = ties.iter().map(|t| t * t * t - t).sum();
    let s = (n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
    let mut numerator = u - mu;
    if continuity {
        numerator -= 0.5;
    }
    // s == 0 (every value equal): z is -inf with the continuity correction (p = 1), NaN without.
    let z = numerator / s;
    normal_cdf(-z)
}

/// The standard normal CDF as cephes' `ndtr` (scipy's `special.ndtr`) evaluates it: `erf` near
/// zero, `erfc` in the tails so that small tail probabilities keep their precision.
pub fn normal_cdf(a: f64) -> f64 {
    let x = a * std::f64::consts::FRAC_1_SQRT_2;
    let z = x.abs();
    if z < std::f64::consts::FRAC_1_SQRT_2 {
        0.5 + 0.5 * libm::erf(x)
    } else {
        let y = 0.5 * libm::erfc(z);
        if x > 0.0 { 1.0 - y } else { y }
    }
}

/// P(U >= u) under the exact null distribution of U for samples of `n1` and `n2` distinct values,
/// or `None` when it is too large to compute.
///
/// The number of arrangements with U = k is the coefficient of q^k in the Gaussian binomial
/// [n1+n2 choose m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i), m = min(n1, n2), n = max. Each
/// step multiplies and then divides exactly, so integer arithmetic gives exact counts.
fn exact_sf(u: f64, n1: usize, n2: usize) -> Option<f64> {
    let (m, n) = (n1.min(n2), n1.max(n2));
    let cells = m.checked_mul(n)?;
    if cells > EXACT_MAX_CELLS {
        return None;
    }
    let mut c = vec![0i128; cells + m + 1];
    c[0] = 1;
    let mut degree = 0;
    for i in 1..=m {
        let shift = n + i;
        let top = degree + shift;
        for k in (shift..=top).rev() {
            c[k] = c[k].checked_sub(c[k - shift])?;
        }
        for k in i..=top {
            c[k] = c[k].checked_add(c[k - i])?;
        }
        degree = top - i;
    }
    let total: i128 = c[..=cells].iter().try_fold(0i128, |acc, &v| acc.checked_add(v))?;
    // U is a whole number without ties; scipy truncates it the same way.
    let from = (u.max(0.0) as usize).min(cells + 1);
    let upper: i128 = c[from..=cells].iter().sum();
    Some(upper as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_sided(x: &[f64], y: &[f64], method: Method) -> MannWhitney {
        mann_whitney_u(x, y, Options { method, ..Options::default() }).unwrap()
    }

    #[test]
    fn scipy_documentation_example() {
        // scipy.stats.mannwhitneyu docs: males vs females, U1 = 17, exact p = 0.1111.
        let male = [19.0, 22.0, 16.0, 29.0, 24.0];
        let female = [20.0, 11.0, 17.0, 12.0];
        let r = two_sided(&male, &female, Method::Auto);
        assert_eq!((r.u1, r.method), (17.0, MethodUsed::Exact));
        assert!((r.p_value - 0.1111111111111111).abs() < 1e-15, "{}", r.p_value);
        let r = two_sided(&male, &female, Method::Asymptotic);
        assert!((r.p_value - 0.11134688653314041).abs() < 1e-12, "{}", r.p_value);
    }

    #[test]
    fn exact_counts_are_the_gaussian_binomial() {
        // n1 = n2 = 2: U in 0..=4 with counts 1,1,2,1,1 of C(4,2) = 6.
        assert_eq!(exact_sf(4.0, 2, 2), Some(1.0 / 6.0));
        assert_eq!(exact_sf(2.0, 2, 2), Some(4.0 / 6.0));
        assert_eq!(exact_sf(0.0, 2, 2), Some(1.0));
        // 8 against 300 is still quick and exact (the statrs approach would enumerate ~3e14).
        let p = exact_sf(1200.0, 8, 300).unwrap();
        assert!(p > 0.0 && p < 1.0);
        assert_eq!(exact_sf(10.0, 3000, 3000), None);
    }

    #[test]
    fn identical_constant_samples_give_p_one() {
        let r = two_sided(&[5.0; 12], &[5.0; 12], Method::Auto);
        assert_eq!((r.u1, r.p_value, r.method), (72.0, 1.0, MethodUsed::Asymptotic));
        let r = mann_whitney_u(&[5.0; 12], &[5.0; 12], Options { continuity: false, ..Options::default() }).unwrap();
        assert!(r.p_value.is_nan());
    }

    #[test]
    fn signed_zeros_tie() {
        let r = two_sided(&[0.0, 1.0], &[-0.0, 2.0], Method::Asymptotic);
        assert_eq!(r.u1, 1.5);
    }

    #[test]
    fn bad_input_is_an_error() {
        let o = Options::default();
        assert_eq!(mann_whitney_u(&[], &[1.0], o), Err(StatsError::EmptySample));
        assert_eq!(mann_whitney_u(&[f64::NAN], &[1.0], o), Err(StatsError::NaN));
        let exact = Options { method: Method::Exact, ..o };
        assert_eq!(mann_whitney_u(&[1.0, 2.0], &[2.0], exact), Err(StatsError::ExactWithTies));
        let big: Vec<f64> = (0..3000).map(f64::from).collect();
        let big2: Vec<f64> = (3000..6000).map(f64::from).collect();
        assert_eq!(mann_whitney_u(&big, &big2, exact), Err(StatsError::ExactTooLarge(3000, 3000)));
    }

    #[test]
    fn normal_cdf_keeps_tail_precision() {
        assert_eq!(normal_cdf(0.0), 0.5);
        // scipy.special.ndtr(-10) = 7.61985302416047e-24
        assert!((normal_cdf(-10.0) / 7.61985302416047e-24 - 1.0).abs() < 1e-13);
        assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
    }
}
