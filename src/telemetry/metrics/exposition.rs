//! Prometheus text 0.0.4 and OpenMetrics 1.0 rendering of metric families.
//! Every metric source writes through `ExpositionWriter`, so both formats stay consistent.

use std::fmt::Write;

/// The exposition format a scraper asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`, the Prometheus default.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`, with exemplars.
    OpenMetrics,
}

impl Format {
    /// Picks the format from an HTTP `Accept` header, as Prometheus' scrape negotiation expects.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A label set as written on a sample line.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// A trace exemplar attached to a histogram bucket (OpenMetrics only).
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    pub trace_id: String,
    pub value: f64,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
}

/// A consistent view of one histogram series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds, ascending, without `+Inf`.
    pub bounds: Vec<f64>,
    /// Cumulative counts, one per bound, then one for `+Inf` (== count).
    pub cumulative: Vec<u64>,
    pub sum: f64,
    /// Per bucket (same indexing as `cumulative`), the latest exemplar if any.
    pub exemplars: Vec<Option<Exemplar>>,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }
}

/// Writes metric families into a text buffer in the chosen format.
///
/// Callers announce a family with [`family`](Self::family) and then write its samples; a
/// family with no samples can be skipped entirely by not announcing it.
pub struct ExpositionWriter {
    out: String,
    format: Format,
    family: String,
    kind: Option<Kind>,
    capture: Option<Capture>,
}

/// Samples taken instead of text: what a scrape of the same exposition would store, for the
/// rule engine's own series. Only names the filter accepts are kept.
struct Capture {
    wanted: Box<dyn Fn(&str) -> bool + Send + Sync>,
    samples: Vec<CapturedSample>,
}

/// One captured sample: the series name, its labels in exposition order, and the value.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl ExpositionWriter {
    pub fn new(format: Format) -> Self {
        ExpositionWriter {
            out: String::with_capacity(64 * 1024),
            format,
            family: String::new(),
            kind: None,
            capture: None,
        }
    }

    /// A writer that records the samples whose series name `wanted` accepts instead of
    /// rendering text; the values are exactly those a scrape of the text would read.
    pub fn capture(wanted: Box<dyn Fn(&str) -> bool + Send + Sync>) -> Self {
        ExpositionWriter {
            out: String::new(),
            format: Format::Prometheus,
            family: String::new(),
            kind: None,
            capture: Some(Capture { wanted, samples: Vec::new() }),
        }
    }

    /// The captured samples (empty for a text writer).
    pub fn into_samples(self) -> Vec<CapturedSample> {
        self.capture.map(|c| c.samples).unwrap_or_default()
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Starts a family. `name` is the full Prometheus name (counters include `_total`).
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        self.family.clear();
        self.family.push_str(name);
        self.kind = Some(kind);
        if self.capture.is_some() {
            return;
        }
        // OpenMetrics names a counter family without its `_total` suffix.
        let family_name = match (self.format, kind) {
            (Format::OpenMetrics, Kind::Counter) => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        self.out.push_str("# HELP ");
        self.out.push_str(family_name);
        self.out.push(' ');
        escape_help(&mut self.out, help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(family_name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
    }

    /// Writes one counter or gauge sample of the current family.
    pub fn sample(&mut self, labels: Labels<'_>, value: f64) {
        let name = std::mem::take(&mut self.family);
        self.line(&name, "", labels, None, value);
        self.family = name;
    }

    /// Writes the bucket, sum and count lines of one histogram series of the current family.
    pub fn histogram(&mut self, labels: Labels<'_>, h: &HistogramSnapshot) {
        let name = std::mem::take(&mut self.family);
        if let Some(c) = &self.capture
            && !["_bucket", "_sum", "_count"].iter().any(|suffix| (c.wanted)(&format!("{name}{suffix}")))
        {
            self.family = name;
            return;
        }
        let mut le_buf = String::new();
        for (i, cumulative) in h.cumulative.iter().enumerate() {
            le_buf.clear();
            match h.bounds.get(i) {
                Some(b) => write_float(&mut le_buf, *b),
                None => le_buf.push_str("+Inf"),
            }
            let exemplar = match self.format {
                Format::OpenMetrics => h.exemplars.get(i).and_then(|e| e.as_ref()),
                Format::Prometheus => None,
            };
            self.line(&name, "_bucket", labels, Some(("le", &le_buf)), *cumulative as f64);
            if let Some(e) = exemplar {
                // The exemplar belongs on the line just written: replace its newline.
                if self.capture.is_some() {
                    continue;
                }
                self.out.pop();
                let _ = write!(self.out, " # {{trace_id=\"{}\"}} ", e.trace_id);
                write_float(&mut self.out, e.value);
                self.out.push(' ');
                write_float(&mut self.out, e.timestamp);
                self.out.push('\n');
            }
        }
        self.line(&name, "_sum", labels, None, h.sum);
        self.line(&name, "_count", labels, None, h.count() as f64);
        self.family = name;
    }

    /// Finishes the exposition and returns the text.
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }

    fn line(&mut self, name: &str, suffix: &str, labels: Labels<'_>, extra: Option<(&str, &str)>, value: f64) {
        if let Some(c) = &mut self.capture {
            let full = format!("{name}{suffix}");
            if (c.wanted)(&full) {
                let labels = labels.iter().copied().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())).collect();
                c.samples.push(CapturedSample { name: full, labels, value });
            }
            return;
        }
        self.out.push_str(name);
        self.out.push_str(suffix);
        if !labels.is_empty() || extra.is_some() {
            self.out.push('{');
            let mut first = true;
            for (k, v) in labels.iter().copied().chain(extra) {
                if !first {
                    self.out.push(',');
                }
                first = false;
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label_value(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_float(&mut self.out, value);
        self.out.push('\n');
    }
}

/// Formats a sample value the way Prometheus' Go client does for the common cases:
/// integers without a fraction, special values as `+Inf`, `-Inf`, `NaN`.
pub fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v == v.trunc() && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: vec![0.1, 1.0],
            cumulative: vec![1, 3, 4],
            sum: 7.25,
            exemplars: vec![None, Some(Exemplar { trace_id: "abc".into(), value: 0.5, timestamp: 1700000000.5 }), None],
        }
    }

    #[test]
    fn prometheus_text_counter_and_histogram() {
        let mut w = ExpositionWriter::new(Format::Prometheus);
        w.family("x_total", "Things.", Kind::Counter);
        w.sample(&[("a", "q\"\\\n")], 3.0);
        w.family("d_seconds", "Durations.", Kind::Histogram);
        w.histogram(&[("m", "GET")], &snapshot());
        let text = w.finish();
        assert_eq!(
            text,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\n\"} 3\n\
             # HELP d_seconds Durations.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{m=\"GET\",le=\"0.1\"} 1\nd_seconds_bucket{m=\"GET\",le=\"1\"} 3\n\
             d_seconds_bucket{m=\"GET\",le=\"+Inf\"} 4\nd_seconds_sum{m=\"GET\"} 7.25\nd_seconds_count{m=\"GET\"} 4\n"
        );
    }

    #[test]
    fn openmetrics_names_counter_family_without_total_and_adds_exemplars_and_eof() {
        let mut w = ExpositionWriter::new(Format::OpenMetrics);
        w.family("x_total", "Things.", Kind::Counter);
        w.sample(&[], 1.0);
        w.family("d_seconds", "Durations.", Kind::Histogram);
        w.histogram(&[], &snapshot());
        let text = w.finish();
        assert!(text.contains("# TYPE x counter\nx_total 1\n"), "{text}");
        assert!(text.contains("d_seconds_bucket{le=\"1\"} 3 # {trace_id=\"abc\"} 0.5 1700000000.5\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn accept_header_negotiation() {
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")),
            Format::OpenMetrics
        );
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
    }

    #[test]
    fn floats_render_like_prometheus() {
        let mut s = String::new();
        for v in [0.005, 1.0, 2.5, f64::INFINITY, f64::NAN, 1e20] {
            write_float(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "0.005 1 2.5 +Inf NaN 100000000000000000000 ");
    }
}
