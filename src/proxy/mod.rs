//! The reverse proxy: worker threads, each a single-threaded runtime with its own listener
//! (SO_REUSEPORT) and upstream pool, serve HTTP/1.1 and h2c within limits and drain on shutdown.

pub mod body;
pub mod conn;
pub mod deadline;
pub mod field_name;
pub mod forward;
pub mod h1;
pub mod raw_request;
pub mod route;
pub mod tunnel;
pub mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};

use conn::{ClientInfo, ClientIo, ConnLimits};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use forward::{Proxy, ProxySettings};

/// Binds one listening socket per worker on the same address (SO_REUSEPORT), so the kernel
/// spreads connections and each worker serves its own without cross-thread hand-offs.
///
/// The first socket binds without SO_REUSEPORT and turns it on only once bound: its bind fails
/// (EADDRINUSE) while any other socket holds the address, another process's SO_REUSEPORT
/// listener included, so a second sidecar on a port in use is refused instead of quietly
/// taking part of the first one's connections. The other workers then join the first.
pub fn bind_listeners(addr: std::net::SocketAddr, workers: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Socket, Type};
    let bind = |addr: std::net::SocketAddr, reuse_port: bool| -> std::io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(reuse_port)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        Ok(socket)
    };
    let first = bind(addr, false)?;
    first.set_reuse_port(true)?;
    // With port 0 the others join the port the first was given.
    let addr = first.local_addr()?.as_socket().unwrap_or(addr);
    let mut sockets = vec![first];
    for _ in 1..workers.max(1) {
        sockets.push(bind(addr, true)?);
    }
    sockets
        .into_iter()
        .map(|socket| {
            socket.listen(1024)?;
            Ok(socket.into())
        })
        .collect()
}

/// Runs one proxy worker per listener on its own thread; each returns how its drain ended
/// once `stop` turns true.
pub fn spawn_workers(
    listeners: Vec<std::net::TcpListener>,
    make_proxy: impl Fn() -> Result<Proxy, String>,
    limits: Limits,
    stop: tokio::sync::watch::Receiver<bool>,
    drain_timeout: Duration,
) -> Result<Vec<std::thread::JoinHandle<Drain>>, String> {
    let mut handles = Vec::with_capacity(listeners.len());
    // `max_connections` bounds the sidecar, so each worker takes its share. Not one count for
    // all: a worker holding a free slot would wait on its own listener while the kernel queued
    // the next client on another's.
    let share = limits.max_connections.div_ceil(listeners.len().max(1));
    for (i, listener) in listeners.into_iter().enumerate() {
        let slots = ConnectionSlots::new(share);
        let proxy = Arc::new(make_proxy()?);
        let cutting = proxy.clone();
        let mut stop = stop.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start proxy worker runtime: {e}"))?;
        let handle = std::thread::Builder::new()
            .name(format!("redline-proxy-{i}"))
            .spawn(move || {
                // Access lines and spans leave this thread in chunks, flushed on a timer and at
                // the end.
                crate::telemetry::logging::batch_this_thread();
                crate::telemetry::spans::batch_this_thread();
                let drain = runtime.block_on(async move {
                    let housekeeping = proxy.clone();
                    tokio::spawn(async move {
                        // Access lines and spans are flushed every 50ms (or faster, with the
                        // deadlines).
                        let period = housekeeping.deadlines().tick().min(Duration::from_millis(50));
                        let mut every = tokio::time::interval(period);
                        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        loop {
                            every.tick().await;
                            housekeeping.sweep(std::time::Instant::now());
                            crate::telemetry::logging::flush_thread();
                            crate::telemetry::spans::flush_thread();
                        }
                    });
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "proxy worker cannot use its listener");
                            return Drain::Complete;
                        }
                    };
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    serve(listener, proxy, slots, limits, stopped, drain_timeout).await
                });
                // Requests still in flight are cut by dropping their tasks with the runtime, here
                // on this thread, so that each still leaves its access line (as `shutdown`) in
                // this thread's batch before the last flush.
                cutting.shutting_down();
                drop(runtime);
                crate::telemetry::logging::flush_thread();
                crate::telemetry::spans::flush_thread();
                drain
            })
            .map_err(|e| format!("cannot start proxy worker thread: {e}"))?;
        handles.push(handle);
    }
    Ok(handles)
}

/// A worker's places for client connections: a connection (and any tunnel made of it) holds
/// one until it ends; without a free one the worker accepts nothing.
pub struct ConnectionSlots {
    semaphore: Arc<Semaphore>,
    total: u32,
}

impl ConnectionSlots {
    pub fn new(max_connections: usize) -> Self {
        let total = max_connections.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        ConnectionSlots { semaphore: Arc::new(Semaphore::new(total)), total: total as u32 }
    }

    async fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.semaphore.clone().acquire_owned().await.ok()
    }

    /// Resolves once every connection of the worker has ended.
    async fn all_free(&self) {
        let _ = self.semaphore.acquire_many(self.total).await;
    }
}

/// Protections against slow or abusive clients.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub deadlines: ConnLimits,
}

/// How the drain after a shutdown signal ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drain {
    /// Every in-flight request completed.
    Complete,
    /// `drain_timeout` passed with requests still in flight; they were cut.
    TimedOut,
}

/// Serves until `shutdown` resolves, then stops accepting and drains for up to `drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    slots: ConnectionSlots,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) -> Drain {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The connection's own clock (conn.rs) times request heads, from the accept on.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        // One buffer per write: hyper then calls send(2) instead of writev(2), which spares the
        // kernel importing an iovec and the file layer on every response.
        .writev(false)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let (drain_start, drain_watch) = conn::drain_signal();
    tokio::pin!(shutdown);
    loop {
        // Waiting for a free slot before accepting leaves excess clients in the kernel backlog.
        let permit = tokio::select! {
            p = slots.take() => match p { Some(p) => p, None => break },
            _ = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let client = Arc::new(ClientInfo::new(client).holding(permit));
        let io = ClientIo::new(stream, client.clone());
        let conn = h1::ClientConn::new(io, proxy.clone(), client.clone(), builder.clone(), limits.max_header_bytes);
        let drain = drain_watch.clone();
        let proxy = proxy.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let end = conn::run(conn.as_mut(), |c| c.graceful_shutdown(), &client, limits.deadlines, drain).await;
            // Client-side errors (resets, bad requests) end only that connection; what hyper
            // answered itself and what redline cut are reported once, here.
            // A cut connection is dropped with this task: its requests then report themselves.
            proxy.connection_ended(&client, &end);
        });
    }
    drop(listener);
    drain_start.start();
    // Every connection, and every tunnel made of one, holds a slot until it ends: all slots
    // free means all drained.
    tokio::select! {
        _ = slots.all_free() => Drain::Complete,
        _ = tokio::time::sleep(drain_timeout) => Drain::TimedOut,
    }
}
