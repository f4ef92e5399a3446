//! One client connection's life: the deadline that bounds it in every protocol state, the I/O
//! wrapper that tells those states apart, and the task that serves it until it ends.
//!
//! | state | deadline | on expiry |
//! | --- | --- | --- |
//! | accepted, no request head complete yet (HTTP/1 or after the HTTP/2 preface) | `header_read_timeout` from the accept | closed; a partial HTTP/1 head is logged as `408 client_timeout` |
//! | idle between HTTP/1.1 requests, or HTTP/2 with no stream open | `idle_timeout` from the end of the last response | closed |
//! | HTTP/1.1 next request head started | `header_read_timeout` from its first byte | closed, logged as `408 client_timeout` |
//! | request in progress, client not reading the response | `stream_idle_timeout` from the first blocked write | closed, the request logged as `client_timeout` |
//!
//! One runtime timer per connection, re-armed only when it fires or when the state moves the
//! deadline earlier: a request in progress costs a few relaxed atomic operations, not a timer.
//! hyper's own HTTP/1 header timer is off (it boxed a timer per request and never covered the
//! protocol detection of a silent socket).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

/// The deadlines of client connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub stream_idle_timeout: Duration,
}

/// Why redline itself closed a client connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CutReason {
    /// No complete request head within `header_read_timeout`.
    HeaderTimeout = 1,
    /// No request within `idle_timeout` of the last one.
    IdleTimeout = 2,
    /// The client stopped reading the response for `stream_idle_timeout`.
    ClientStalled = 3,
    /// The drain after a shutdown signal ran out of time.
    Shutdown = 4,
}

impl CutReason {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(CutReason::HeaderTimeout),
            2 => Some(CutReason::IdleTimeout),
            3 => Some(CutReason::ClientStalled),
            4 => Some(CutReason::Shutdown),
            _ => None,
        }
    }

    /// The `reason` label of `redline_client_connections_closed_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            CutReason::HeaderTimeout => "header_timeout",
            CutReason::IdleTimeout => "idle_timeout",
            CutReason::ClientStalled => "stream_idle_timeout",
            CutReason::Shutdown => "shutdown",
        }
    }
}

const FRESH: u8 = 0;
const IDLE: u8 = 1;
const HEAD: u8 = 2;

/// The protocol state of one connection, shared by its I/O wrapper, its requests and its task.
/// Everything touching it runs on the connection's worker thread; atomics only make it `Sync`.
pub struct ConnClock {
    accepted: Instant,
    /// Nanoseconds from `accepted` to the start of the current phase.
    since: AtomicU64,
    phase: AtomicU8,
    /// Requests in progress on this connection (HTTP/2 streams, or the one HTTP/1 request).
    active: AtomicU32,
    /// Bytes arrived in the current FRESH or HEAD phase.
    got_bytes: AtomicBool,
    h2: AtomicBool,
    /// The phase moved the deadline earlier: the task re-arms its timer.
    rearm: AtomicBool,
    /// Nanoseconds from `accepted` to the change that set `rearm`: the task's "now" when it
    /// re-arms, rather than a clock read of its own.
    rearm_at: AtomicU64,
    /// 1 + nanoseconds from `accepted` to the write that found the client's window full; 0: none.
    write_blocked: AtomicU64,
    cut: AtomicU8,
}

impl ConnClock {
    pub fn new(accepted: Instant) -> Self {
        ConnClock {
            accepted,
            since: AtomicU64::new(0),
            phase: AtomicU8::new(FRESH),
            active: AtomicU32::new(0),
            got_bytes: AtomicBool::new(false),
            h2: AtomicBool::new(false),
            rearm: AtomicBool::new(false),
            rearm_at: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
            cut: AtomicU8::new(0),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.accepted).as_nanos().min(u64::MAX as u128 - 1) as u64
    }

    fn at(&self, nanos: u64) -> Instant {
        self.accepted + Duration::from_nanos(nanos)
    }

    /// Asks the task to re-arm its timer for a change made at `nanos`.
    fn rearm(&self, nanos: u64) {
        self.rearm_at.store(nanos, Ordering::Relaxed);
        self.rearm.store(true, Ordering::Relaxed);
    }

    /// When the change that asked for a re-arm was made, once (None when none was asked for).
    fn take_rearm(&self) -> Option<Instant> {
        self.rearm.swap(false, Ordering::Relaxed).then(|| self.at(self.rearm_at.load(Ordering::Relaxed)))
    }

    /// When the current phase began (the accept, the last response's end, a head's first byte).
    pub fn phase_start(&self) -> Instant {
        self.at(self.since.load(Ordering::Relaxed))
    }

    /// A request head was complete and handed to the proxy.
    pub fn request_started(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    /// A request's response ended (or the request was abandoned).
    pub fn request_ended(&self, now: Instant) {
        if self.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            let now = self.nanos(now);
            self.since.store(now, Ordering::Relaxed);
            self.got_bytes.store(false, Ordering::Relaxed);
            self.phase.store(IDLE, Ordering::Relaxed);
            self.write_blocked.store(0, Ordering::Relaxed);
            // The idle deadline may come before the one the busy connection was armed for.
            self.rearm(now);
        }
    }

    /// Why redline closed the connection, once it did.
    pub fn cut_reason(&self) -> Option<CutReason> {
        CutReason::from_u8(self.cut.load(Ordering::Relaxed))
    }

    pub fn cut(&self, reason: CutReason) {
        let _ = self.cut.compare_exchange(0, reason as u8, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether any byte of a request head arrived in the phase that just expired, on HTTP/1.
    pub fn had_partial_head(&self) -> bool {
        self.got_bytes.load(Ordering::Relaxed) && !self.h2.load(Ordering::Relaxed)
    }

    fn on_read(&self, bytes: &[u8]) {
        match self.phase.load(Ordering::Relaxed) {
            FRESH if !self.got_bytes.load(Ordering::Relaxed) => {
                self.got_bytes.store(true, Ordering::Relaxed);
                // The HTTP/2 preface; no HTTP/1 method is called PRI.
                if bytes.starts_with(b"PRI ") {
                    self.h2.store(true, Ordering::Relaxed);
                }
            }
            IDLE if self.active.load(Ordering::Relaxed) == 0 && !self.h2.load(Ordering::Relaxed) => {
                // The next HTTP/1 request head begins: it has `header_read_timeout` from now.
                let now = self.nanos(Instant::now());
                self.since.store(now, Ordering::Relaxed);
                self.got_bytes.store(true, Ordering::Relaxed);
                self.phase.store(HEAD, Ordering::Relaxed);
                self.rearm(now);
            }
            _ => {}
        }
    }

    fn on_write(&self, blocked: bool) {
        let was = self.write_blocked.load(Ordering::Relaxed);
        if blocked && was == 0 && self.active.load(Ordering::Relaxed) > 0 {
            let now = self.nanos(Instant::now());
            self.write_blocked.store(now + 1, Ordering::Relaxed);
            self.rearm(now);
        } else if !blocked && was != 0 {
            self.write_blocked.store(0, Ordering::Relaxed);
        }
    }

    /// When the connection's current state expires; `Err` when it already has.
    fn deadline(&self, now: Instant, limits: &ConnLimits) -> Result<Instant, CutReason> {
        let (deadline, reason) = if self.active.load(Ordering::Relaxed) > 0 {
            match self.write_blocked.load(Ordering::Relaxed) {
                // Busy and moving: nothing to enforce at this level; look again later (soon
                // enough for an HTTP/2 stream that ended in its own task to be noticed).
                0 => return Ok(now + limits.idle_timeout.min(limits.header_read_timeout)),
                blocked => (self.at(blocked - 1) + limits.stream_idle_timeout, CutReason::ClientStalled),
            }
        } else {
            let since = self.at(self.since.load(Ordering::Relaxed));
            match self.phase.load(Ordering::Relaxed) {
                IDLE => (since + limits.idle_timeout, CutReason::IdleTimeout),
                _ => (since + limits.header_read_timeout, CutReason::HeaderTimeout),
            }
        };
        if deadline <= now { Err(reason) } else { Ok(deadline) }
    }
}

/// The downstream connection a request arrived on, prepared once per connection.
pub struct ClientInfo {
    pub addr: std::net::SocketAddr,
    /// The client IP as a header value, for `X-Forwarded-For` and the access log.
    pub ip: HeaderValue,
    pub clock: ConnClock,
    /// The connection's place under `max_connections`, held until the connection and any
    /// tunnel made of it are gone.
    _slot: Option<OwnedSemaphorePermit>,
}

impl ClientInfo {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        let ip = HeaderValue::from_str(&addr.ip().to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ClientInfo { addr, ip, clock: ConnClock::new(Instant::now()), _slot: None }
    }

    /// Holds `slot` for as long as this connection (or a tunnel made of it) lives.
    pub fn holding(mut self, slot: OwnedSemaphorePermit) -> Self {
        self._slot = Some(slot);
        self
    }
}

/// The client's socket, telling the connection's clock what it reads and when writes stall.
pub struct ClientIo {
    stream: TcpStream,
    info: Arc<ClientInfo>,
}

impl ClientIo {
    pub fn new(stream: TcpStream, info: Arc<ClientInfo>) -> Self {
        ClientIo { stream, info }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.info.clock.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        self.info.clock.on_write(polled.is_pending());
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.info.clock.on_write(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// How a connection's task ended.
pub enum ConnEnd {
    /// The connection finished by itself; `Err` holds why hyper ended it.
    Closed(Result<(), Box<dyn std::error::Error + Send + Sync>>),
    /// redline closed it for `reason`.
    Cut(CutReason),
}

/// Starts a worker's drain: every connection's [`DrainWatch`] sees it.
pub struct DrainStart {
    started: Arc<AtomicBool>,
    tx: tokio::sync::watch::Sender<bool>,
}

/// A worker's drain as each connection sees it: a flag read on every wake-up, and the channel
/// whose change wakes the connection. The channel's future is polled once to register and then
/// only once the flag is set: polling it on every wake-up cost more than the flag.
#[derive(Clone)]
pub struct DrainWatch {
    started: Arc<AtomicBool>,
    rx: tokio::sync::watch::Receiver<bool>,
}

pub fn drain_signal() -> (DrainStart, DrainWatch) {
    let started = Arc::new(AtomicBool::new(false));
    let (tx, rx) = tokio::sync::watch::channel(false);
    (DrainStart { started: started.clone(), tx }, DrainWatch { started, rx })
}

impl DrainStart {
    pub fn start(&self) {
        // The flag first: a connection woken by the send must find it set.
        self.started.store(true, Ordering::Release);
        let _ = self.tx.send(true);
    }
}

/// Serves `conn` until it ends, closing it when its state's deadline passes, and shutting it
/// down gracefully once `drain` starts.
pub async fn run<F>(
    conn: Pin<&mut F>,
    graceful: impl Fn(Pin<&mut F>),
    info: &ClientInfo,
    limits: ConnLimits,
    drain: DrainWatch,
) -> ConnEnd
where
    F: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    let clock = &info.clock;
    let mut conn = conn;
    let mut armed = clock.deadline(Instant::now(), &limits).unwrap_or_else(|_| Instant::now());
    let sleep = tokio::time::sleep_until(armed.into());
    tokio::pin!(sleep);
    let DrainWatch { started, mut rx } = drain;
    let draining = rx.wait_for(|d| *d);
    tokio::pin!(draining);
    let mut drained = false;
    let mut registered = false;
    // The timer was polled since it was last set: its expiry wakes this task.
    let mut timer_set = false;
    // Hand-polled rather than a select!: this runs on every wake-up of every connection.
    poll_fn(|cx| {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(ConnEnd::Closed(result));
        }
        // hyper's poll changed the state (a head began, a write blocked, a response ended). The
        // timer only moves when the new deadline is earlier than the armed one: a later one is
        // found when the armed one fires, so a busy connection costs no timer work per request.
        if let Some(at) = clock.take_rearm() {
            match clock.deadline(at, &limits) {
                Ok(next) if next < armed => {
                    armed = next;
                    sleep.as_mut().reset(next.into());
                    // tokio keeps the registered waker across a reset, but its documentation
                    // does not promise it: polled again below.
                    timer_set = false;
                }
                Ok(_) => {}
                Err(reason) => return Poll::Ready(cut(clock, reason)),
            }
        }
        // Polling the timer on every wake-up cost more than reading the clock, and reading the
        // clock more than asking the timer whether the runtime fired it: it is polled once set,
        // so that its expiry wakes this task, and then only once it fired.
        if !timer_set || sleep.is_elapsed() {
            while sleep.as_mut().poll(cx).is_ready() {
                match clock.deadline(Instant::now(), &limits) {
                    Ok(next) => {
                        armed = next;
                        sleep.as_mut().reset(next.into());
                    }
                    Err(reason) => return Poll::Ready(cut(clock, reason)),
                }
            }
            timer_set = true;
        }
        if !drained && (!registered || started.load(Ordering::Acquire)) {
            registered = true;
            if draining.as_mut().poll(cx).is_ready() {
                // Idle connections close now; busy ones after their response.
                drained = true;
                graceful(conn.as_mut());
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    })
    .await
}

fn cut(clock: &ConnClock, reason: CutReason) -> ConnEnd {
    clock.cut(reason);
    ConnEnd::Cut(reason)
}

/// Connections redline closed, by reason, for `redline_client_connections_closed_total`.
#[derive(Default)]
pub struct ConnCounters {
    closed: [AtomicU64; 4],
}

impl ConnCounters {
    pub fn closed(&self, reason: CutReason) {
        self.closed[reason as usize - 1].fetch_add(1, Ordering::Relaxed);
    }

    pub fn write(&self, w: &mut crate::telemetry::metrics::ExpositionWriter) {
        use crate::telemetry::metrics::Kind;
        w.family(
            "redline_client_connections_closed_total",
            "Client connections the sidecar closed itself, by reason.",
            Kind::Counter,
        );
        for reason in [CutReason::HeaderTimeout, CutReason::IdleTimeout, CutReason::ClientStalled, CutReason::Shutdown]
        {
            w.sample(&[("reason", reason.as_str())], self.closed[reason as usize - 1].load(Ordering::Relaxed) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            stream_idle_timeout: Duration::from_secs(300),
        }
    }

    #[test]
    fn a_silent_connection_expires_at_the_header_timeout_from_its_accept() {
        let t0 = Instant::now();
        let c = ConnClock::new(t0);
        assert_eq!(c.deadline(t0, &limits()), Ok(t0 + Duration::from_secs(10)));
        assert_eq!(c.deadline(t0 + Duration::from_secs(10), &limits()), Err(CutReason::HeaderTimeout));
        assert!(!c.had_partial_head());
        c.on_read(b"GET / HT");
        assert!(c.had_partial_head());
        assert_eq!(
            c.deadline(t0 + Duration::from_secs(9), &limits()),
            Ok(t0 + Duration::from_secs(10)),
            "bytes do not extend it"
        );
    }

    #[test]
    fn the_http2_preface_alone_does_not_count_as_a_request() {
        let t0 = Instant::now();
        let c = ConnClock::new(t0);
        c.on_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(c.deadline(t0 + Duration::from_secs(11), &limits()), Err(CutReason::HeaderTimeout));
        assert!(!c.had_partial_head(), "no HTTP/1 head to log");
    }

    #[test]
    fn requests_hold_the_connection_and_idleness_counts_from_the_last_response() {
        let t0 = Instant::now();
        let c = ConnClock::new(t0);
        c.on_read(b"GET / HTTP/1.1\r\n\r\n");
        c.request_started();
        let busy = t0 + Duration::from_secs(100);
        assert_eq!(c.deadline(busy, &limits()), Ok(busy + Duration::from_secs(10)), "no cut while busy");
        c.request_ended(busy);
        assert_eq!(c.take_rearm(), Some(busy), "re-armed as of the response's end");
        assert_eq!(c.take_rearm(), None, "once");
        assert_eq!(c.deadline(busy, &limits()), Ok(busy + Duration::from_secs(60)));
        assert_eq!(c.deadline(busy + Duration::from_secs(60), &limits()), Err(CutReason::IdleTimeout));
        // The next head starts: the header timeout counts from its first byte.
        c.on_read(b"G");
        assert!(c.take_rearm().is_some());
        let next = c.deadline(Instant::now(), &limits()).expect("not expired");
        assert!(next <= Instant::now() + Duration::from_secs(10));
    }

    #[test]
    fn http2_frames_between_streams_do_not_restart_the_idle_clock() {
        let t0 = Instant::now();
        let c = ConnClock::new(t0);
        c.on_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        c.request_started();
        c.request_ended(t0);
        c.on_read(b"\x00\x00\x08\x06"); // a PING
        assert_eq!(c.deadline(t0, &limits()), Ok(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn a_client_that_stops_reading_is_cut_after_the_stream_idle_timeout() {
        let t0 = Instant::now();
        let c = ConnClock::new(t0);
        c.request_started();
        c.on_write(true);
        let blocked = c.at(c.write_blocked.load(Ordering::Relaxed) - 1);
        assert_eq!(c.deadline(blocked, &limits()), Ok(blocked + Duration::from_secs(300)));
        assert_eq!(c.deadline(blocked + Duration::from_secs(300), &limits()), Err(CutReason::ClientStalled));
        c.on_write(false);
        assert!(c.deadline(blocked + Duration::from_secs(300), &limits()).is_ok(), "moving again");
    }

    #[test]
    fn the_first_cut_reason_sticks() {
        let c = ConnClock::new(Instant::now());
        assert_eq!(c.cut_reason(), None);
        c.cut(CutReason::ClientStalled);
        c.cut(CutReason::Shutdown);
        assert_eq!(c.cut_reason(), Some(CutReason::ClientStalled));
    }
}
