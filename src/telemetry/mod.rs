//! What the sidecar observes about each request: RED metrics, JSON logs, trace context.
//! Everything here is written from the proxy hot path and never blocks it.

pub mod access_log;
pub mod chunk_pool;
pub mod log_writer;
pub mod logging;
pub mod metrics;
pub mod otlp;
pub mod out;
pub mod propagation;
pub mod red;
pub mod spans;
pub mod trace_context;
pub mod wall_clock;
