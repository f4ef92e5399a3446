//! The sidecar's own metric primitives and their exposition.
//! Hot-path types (`Histogram`) are lock-free; rendering goes through `ExpositionWriter`.

pub mod exposition;
pub mod histogram;

pub use exposition::{CapturedSample, Exemplar, ExpositionWriter, Format, HistogramSnapshot, Kind, Labels};
pub use histogram::{BODY_SIZE_BUCKETS, Histogram, OTEL_DURATION_BUCKETS};
