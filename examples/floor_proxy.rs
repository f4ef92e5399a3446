//! A measuring instrument, not a product: the least per-request work a tokio reverse proxy can
//! do, to show where tokio's floor lies next to HAProxy and nginx (`scripts/bench-proxy-cpu.sh`,
//! `scripts/bench-proxy-instructions.sh`, `scripts/bench-proxy.sh`; docs/benchmarks.md).
//!
//! Per request it parses the head with httparse, copies it upstream with `X-Forwarded-For`
//! appended, reads the answer (Content-Length framing only) and writes it back: no telemetry, no
//! hop-by-hop handling, no limits, no timeouts, no request bodies. Each worker is a
//! current-thread runtime with its own SO_REUSEPORT listener and upstream pool, as in redline.
//!
//!   cargo run --release --example floor_proxy -- LISTEN UPSTREAM [WORKERS]
//!   (e.g. 127.0.0.1:18084 127.0.0.1:18080 1; the bench scripts run it)

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Pool = Rc<RefCell<Vec<TcpStream>>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, upstream) = match (args.first(), args.get(1)) {
        (Some(l), Some(u)) => (l.parse::<SocketAddr>()?, u.parse::<SocketAddr>()?),
        _ => return Err("usage: floor_proxy LISTEN UPSTREAM [WORKERS]".into()),
    };
    let workers: usize = args.get(2).map(|w| w.parse()).transpose()?.unwrap_or(1);
    let mut threads = Vec::new();
    for _ in 0..workers.max(1) {
        let socket = socket2::Socket::new(socket2::Domain::for_address(listen), socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&listen.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        threads.push(std::thread::spawn(move || -> io::Result<()> {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let listener = TcpListener::from_std(listener)?;
                let pool: Pool = Rc::default();
                loop {
                    let (client, _) = listener.accept().await?;
                    client.set_nodelay(true)?;
                    let pool = pool.clone();
                    tokio::task::spawn_local(async move {
                        let _ = serve(client, upstream, pool).await;
                    });
                }
            })
        }));
    }
    for t in threads {
        t.join().map_err(|_| "worker panicked")??;
    }
    Ok(())
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, pool: Pool) -> io::Result<()> {
    let mut request = Vec::with_capacity(4096);
    let mut head = Vec::with_capacity(1024);
    let mut response = Vec::with_capacity(4096);
    loop {
        // Pipelined requests already in the buffer are served before reading more.
        while upstream_head(&request, &mut head)?.map(|len| request.drain(..len)).is_none() {
            request.reserve(4096);
            if client.read_buf(&mut request).await? == 0 {
                return Ok(());
            }
        }
        // A pooled connection the upstream has closed fails before any byte comes back; the
        // request (bodyless) then goes once more on a fresh connection.
        let pooled = pool.borrow_mut().pop();
        let mut conn = match pooled {
            Some(conn) => exchange(conn, &head, &mut response).await.ok(),
            None => None,
        };
        if conn.is_none() {
            let fresh = TcpStream::connect(upstream).await?;
            fresh.set_nodelay(true)?;
            conn = Some(exchange(fresh, &head, &mut response).await?);
        }
        client.write_all(&response).await?;
        if let Some(conn) = conn {
            pool.borrow_mut().push(conn);
        }
    }
}

/// Writes the upstream head for a complete request head in `buf`; returns the head's length.
fn upstream_head(buf: &[u8], out: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf).map_err(io::Error::other)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    out.clear();
    out.extend_from_slice(req.method.unwrap_or("GET").as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.path.unwrap_or("/").as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: 127.0.0.1\r\n\r\n");
    Ok(Some(len))
}

/// Sends `head` and reads one Content-Length-framed response into `response`.
async fn exchange(mut conn: TcpStream, head: &[u8], response: &mut Vec<u8>) -> io::Result<TcpStream> {
    conn.write_all(head).await?;
    response.clear();
    loop {
        response.reserve(4096);
        if conn.read_buf(response).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(response).map_err(io::Error::other)? {
            let body = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                .ok_or_else(|| io::Error::other("the floor proxy only reads Content-Length bodies"))?;
            while response.len() < len + body {
                response.reserve(4096);
                if conn.read_buf(response).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            return Ok(conn);
        }
    }
}
