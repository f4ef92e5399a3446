//! The keep-alive client to the upstream, with a connector that counts open connections
//! for `redline_upstream_connections{state}` and classifies connect failures.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::telemetry::metrics::{ExpositionWriter, Kind};

/// Upstream connection counts: open sockets and those carrying a request right now.
#[derive(Default)]
pub struct UpstreamGauges {
    open: AtomicI64,
    in_use: AtomicI64,
}

impl UpstreamGauges {
    /// Marks one upstream exchange as in progress until the guard drops.
    pub fn exchange(self: &Arc<Self>) -> InUse {
        self.in_use.fetch_add(1, Ordering::Relaxed);
        InUse(self.clone())
    }

    pub fn write(&self, w: &mut ExpositionWriter) {
        let open = self.open.load(Ordering::Relaxed).max(0);
        let in_use = self.in_use.load(Ordering::Relaxed).clamp(0, open);
        w.family("redline_upstream_connections", "Connections from the proxy to the upstream, by state.", Kind::Gauge);
        w.sample(&[("state", "active")], in_use as f64);
        w.sample(&[("state", "idle")], (open - in_use) as f64);
    }
}

pub struct InUse(Arc<UpstreamGauges>);

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct CountingConnector {
    inner: HttpConnector,
    gauges: Arc<UpstreamGauges>,
}

impl tower_service::Service<Uri> for CountingConnector {
    type Response = CountedConn;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<CountedConn, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let gauges = self.gauges.clone();
        Box::pin(async move {
            let io = connecting.await?;
            gauges.open.fetch_add(1, Ordering::Relaxed);
            Ok(CountedConn { io, gauges })
        })
    }
}

/// A pooled upstream socket; dropping it closes it and updates the gauge.
pub struct CountedConn {
    io: TokioIo<TcpStream>,
    gauges: Arc<UpstreamGauges>,
}

impl Drop for CountedConn {
    fn drop(&mut self) {
        self.gauges.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection for CountedConn {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl hyper::rt::Read for CountedConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for CountedConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

pub type UpstreamClient<B> = Client<CountingConnector, B>;

/// Builds the pooled HTTP/1.1 client to the upstream.
pub fn client<B>(gauges: Arc<UpstreamGauges>, connect_timeout: Duration) -> UpstreamClient<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(CountingConnector { inner: http, gauges })
}
