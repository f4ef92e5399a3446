//! Upgraded connections (WebSocket and other `Upgrade` protocols): after the upstream's 101,
//! bytes flow both ways untouched between the client and the upstream until either side closes.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::conn::ClientInfo;
use super::upstream::{InUse, UpstreamConn};

/// Joins the client's upgraded connection to the upstream's once hyper has sent the 101.
/// `in_use` keeps the upstream connection counted as active while the tunnel is open, and
/// `connection` keeps its place under `max_connections` (and in the drain).
pub async fn carry(client: OnUpgrade, upstream: Box<UpstreamConn>, in_use: Option<InUse>, connection: Arc<ClientInfo>) {
    let upgraded = match client.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(error = %e, "the client connection was not upgraded");
            return;
        }
    };
    let mut client = TokioIo::new(upgraded);
    match upstream.tunnel(&mut client).await {
        Ok((to_client, to_upstream)) => tracing::debug!(to_client, to_upstream, "upgraded connection closed"),
        Err(e) => tracing::debug!(error = %e, "upgraded connection broke"),
    }
    drop(in_use);
    drop(connection);
}
