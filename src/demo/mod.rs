//! The built-in demo service that `redline demo` and the integration tests put behind the sidecar.
//! It is a real HTTP server with realistic routes, latency and injectable faults.

pub mod upstream;
