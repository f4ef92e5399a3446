//! A measuring instrument, not a product: the upstream of `scripts/bench-grpc.sh`, a real gRPC
//! server nobody here wrote. It serves the standard `grpc.health.v1.Health` service from the
//! `tonic-health` crate over h2c, with the whole server (`""`) reported as SERVING, so a unary
//! `grpc.health.v1.Health/Check` with an empty `HealthCheckRequest` answers `status: SERVING`
//! and `grpc-status: 0` in the trailers.
//!
//! One thread: a current-thread tokio runtime, so the upstream's share of a small machine stays
//! the same whichever proxy sits in front of it (the benchmark's proxies run one worker or
//! thread too).
//!
//!   cargo run --release --example grpc_health_upstream -- LISTEN
//!   (e.g. 127.0.0.1:18400; `scripts/bench-grpc.sh` runs it)

use std::net::SocketAddr;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = match std::env::args().nth(1) {
        Some(l) => l.parse()?,
        None => return Err("usage: grpc_health_upstream LISTEN".into()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        // `health_reporter` starts with the server as a whole ("") SERVING.
        let (_reporter, health) = tonic_health::server::health_reporter();
        tonic::transport::Server::builder().add_service(health).serve(listen).await
    })?;
    Ok(())
}
