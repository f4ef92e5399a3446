//! PromQL evaluation over an in-process sample store, bit-for-bit compatible with Prometheus 2.42
//! on all of 2.42's PromQL; expressions are parsed by `promql-parser` and checked once against
//! what 2.42 has ([`parse`]), then evaluated.

// Layout: `eval` walks the tree, `functions`/`aggregate`/`binary` implement the operators,
// `check` parses as 2.42 and refuses what 2.42 lacks at rule load, `storage` holds series for tests and
// `rules test`, `series_notation` reads promtool's `input_series` syntax, `gomath` reproduces
// the Go standard library behaviour the results depend on (Go's exp differs from libm's),
// `gotrig` Go's trigonometric, hyperbolic and logarithm functions, `godate` Go's calendar for
// the date functions.

mod aggregate;
mod binary;
mod check;
mod eval;
mod functions;
mod godate;
mod gomath;
mod gotrig;
mod labels;
mod quantile;
mod series_notation;
mod storage;

use promql_parser::label::Matchers;
use promql_parser::parser::Expr;

pub use check::{check, history_needed_ms, parse, parse_syntax, selectors};
pub use labels::{format_labels, label_value, labels_from_pairs};
pub use series_notation::{expand_series_samples, expand_series_values, parse_series_labels};
pub use storage::{MemoryStorage, matches_all};

/// A label set sorted by name (byte order), including `__name__` when present. Label values are
/// never empty: as in Prometheus, setting a label to "" removes it.
pub type Labels = Vec<(String, String)>;

/// The name of the label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Bit pattern of the staleness marker Prometheus writes when a series disappears.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a float (a NaN with a specific payload).
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True for the staleness marker only, not for other NaNs (a NaN sample value is a real value).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One series with its samples as (timestamp in ms, value), in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// The result of evaluating an expression at one instant.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

/// Where the evaluator reads samples from.
pub trait Storage {
    /// Series whose labels match all matchers, with their samples in [start_ms, end_ms]
    /// inclusive (staleness markers included). Series without samples in the window may be
    /// returned or left out; the evaluator treats both alike.
    fn select(&self, matchers: &Matchers, start_ms: i64, end_ms: i64) -> Vec<Series>;

    /// The same series as [`Storage::select`], in the same order, lent to `f` instead of
    /// copied: the hot path of range functions, which read each window once.
    fn visit<'s>(&'s self, matchers: &Matchers, start_ms: i64, end_ms: i64, f: &mut dyn FnMut(&'s Labels, Window<'_>));
}

/// The samples of one series in a window, as one or two contiguous runs (a ring buffer's two
/// halves), in time order.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    pub head: &'a [(i64, f64)],
    pub tail: &'a [(i64, f64)],
    /// The storage knows no staleness marker is among them (false: it may not know).
    pub stale_free: bool,
    /// The storage knows no sample is below the one before it, so a counter has not reset
    /// (false: it may not know).
    pub non_decreasing: bool,
}

impl<'a> Window<'a> {
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a (i64, f64)> + 'a {
        self.head.iter().chain(self.tail.iter())
    }
}

/// Evaluation parameters that are not part of the expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalOptions {
    /// How far back an instant selector looks for the latest sample (Prometheus default 5m).
    pub lookback_ms: i64,
    /// The step of subqueries written without one (`x[1h:]`): the rule evaluation interval.
    pub interval_ms: i64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { lookback_ms: 5 * 60_000, interval_ms: 60_000 }
    }
}

/// Evaluates `expr` at `t_ms`. The expression must have passed [`check`]; anything it would
/// refuse is reported as an error here too, never as a panic.
pub fn eval_instant(expr: &Expr, storage: &dyn Storage, t_ms: i64, opts: &EvalOptions) -> Result<Value, String> {
    eval::Evaluator::new(storage, *opts, t_ms).with_fetch_bounds(expr).eval(expr, t_ms)
}
