//! The canary plot: one metric's baseline and canary samples over the analysis window as an
//! inline SVG line chart, drawn on the server (no script, no chart library). Pure.

use maud::{Markup, html};

use crate::readiness::report::MetricSeries;

const W: f64 = 520.0;
const H: f64 = 170.0;
/// Room for the axis labels on the left and the legend at the bottom.
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 10.0;

/// A value as an axis label: short, whatever its scale.
fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 || v.abs() < 0.01 {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The points of one side as an SVG `points` list, scaled into the plot area; NaN and infinite
/// samples (no traffic in a step) are left out, as the judge leaves them out.
fn points(values: &[f64], n: usize, lo: f64, hi: f64) -> String {
    let span = if hi > lo { hi - lo } else { 1.0 };
    let step = if n > 1 { (W - LEFT - 8.0) / (n - 1) as f64 } else { 0.0 };
    values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, v)| {
            let x = LEFT + step * i as f64;
            let y = TOP + (H - TOP - BOTTOM) * (1.0 - (v - lo) / span);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The chart of one metric; a line saying so when neither side has a finite sample.
pub fn series_svg(s: &MetricSeries) -> Markup {
    let finite = s.baseline.iter().chain(&s.canary).copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return html! { p.muted { "no samples for " (s.name) } };
    }
    // Start at zero for non-negative metrics, so a small change does not look like a cliff.
    let lo = if lo >= 0.0 { 0.0 } else { lo };
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let n = s.baseline.len().max(s.canary.len());
    let base_y = H - BOTTOM;
    html! {
        svg.plot width=(W) height=(H) viewBox={ "0 0 " (W) " " (H) } role="img"
            aria-label={ (s.name) ": canary vs baseline" } {
            title { (s.name) ": canary (orange) vs baseline (blue), " (n) " steps" }
            line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(base_y) stroke="#999" {}
            line x1=(LEFT) y1=(base_y) x2=(W - 8.0) y2=(base_y) stroke="#999" {}
            text x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" font-size="11" { (label(hi)) }
            text x=(LEFT - 4.0) y=(base_y) text-anchor="end" font-size="11" { (label(lo)) }
            polyline points=(points(&s.baseline, n, lo, hi)) fill="none" stroke="#2b6cb0" stroke-width="2" {}
            polyline points=(points(&s.canary, n, lo, hi)) fill="none" stroke="#dd6b20" stroke-width="2" {}
            rect x=(LEFT) y=(H - 14.0) width="10" height="10" fill="#2b6cb0" {}
            text x=(LEFT + 14.0) y=(H - 5.0) font-size="11" { "baseline" }
            rect x=(LEFT + 80.0) y=(H - 14.0) width="10" height="10" fill="#dd6b20" {}
            text x=(LEFT + 94.0) y=(H - 5.0) font-size="11" { "canary" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(baseline: Vec<f64>, canary: Vec<f64>) -> MetricSeries {
        MetricSeries { name: "p99_latency".into(), classification: "high", baseline, canary }
    }

    #[test]
    fn both_sides_are_drawn_scaled_into_the_plot() {
        let svg = series_svg(&series(vec![1.0, 1.0, 1.0], vec![2.0, 3.0, f64::NAN])).into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        // The canary's NaN step is left out: two points only.
        let canary = svg.split("<polyline").nth(2).expect("canary line");
        let pts = canary.split("points=\"").nth(1).and_then(|p| p.split('"').next()).expect("points");
        assert_eq!(pts.split(' ').count(), 2, "{pts}");
        // The maximum (3) is at the top of the area, zero at its bottom.
        assert!(pts.ends_with(&format!(",{TOP:.1}")), "{pts}");
        assert!(svg.contains(">3<"), "{svg}");
    }

    #[test]
    fn no_samples_is_said_in_words_and_names_are_escaped() {
        let mut s = series(vec![f64::NAN], vec![]);
        s.name = "<b>x</b>".into();
        let html = series_svg(&s).into_string();
        assert_eq!(html, "<p class=\"muted\">no samples for &lt;b&gt;x&lt;/b&gt;</p>");
    }

    #[test]
    fn labels_stay_short() {
        assert_eq!(label(0.0), "0");
        assert_eq!(label(0.25), "0.25");
        assert_eq!(label(12_345.0), "1.23e4");
        assert_eq!(label(0.0001), "1.00e-4");
    }
}
