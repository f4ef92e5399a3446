//! `redline demo` and the built-in demo service it (and the integration tests) put behind the
//! sidecar: a real HTTP server with realistic routes, latency and injectable faults.

pub mod command;
pub mod run;
pub mod upstream;
