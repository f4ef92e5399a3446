//! The non-blocking stdout writer behind the JSON log. Proxy worker threads collect lines in a
//! thread-local batch and hand whole chunks to one writer thread; other threads hand each line
//! over at once. When the writer cannot keep up, chunks are dropped and their lines counted.

use std::cell::RefCell;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// A batch is handed over once it holds this much.
const CHUNK_BYTES: usize = 32 * 1024;
/// A batch's buffer has room for one more line past `CHUNK_BYTES`: the line that crosses the
/// mark is appended in place. (A buffer of exactly `CHUNK_BYTES` grew, copying 32 KiB, once per
/// batch: about 300 instructions per request, measured with callgrind.)
const BATCH_CAPACITY: usize = CHUNK_BYTES + 16 * 1024;
/// The writer thread's own buffer, for lines handed over one by one; whole batches are larger
/// and go to stdout without being copied into it.
const WRITE_BUFFER: usize = 8 * 1024;
/// Chunks waiting for the writer thread; past it they are dropped.
const QUEUE_CHUNKS: usize = 1024;

enum Message {
    Chunk(Vec<u8>),
    /// Write out everything received so far, then answer.
    Flush(SyncSender<()>),
}

/// Lines dropped because stdout could not keep up (`redline_log_lines_dropped_total`).
#[derive(Clone, Debug, Default)]
pub struct DropCounter(Arc<AtomicU64>);

impl DropCounter {
    pub fn dropped_lines(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The `MakeWriter` given to the fmt layer; cheap to clone.
#[derive(Clone)]
pub struct LogWriter {
    tx: SyncSender<Message>,
    dropped: DropCounter,
}

thread_local! {
    /// Some on threads that batch (proxy workers, which flush on a timer).
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

struct Batch {
    buf: Vec<u8>,
    writer: LogWriter,
}

impl LogWriter {
    /// Starts the writer thread over `out`.
    pub fn start(out: impl Write + Send + 'static) -> LogWriter {
        let (tx, rx) = sync_channel(QUEUE_CHUNKS);
        let spawned = std::thread::Builder::new().name("redline-log-writer".into()).spawn(move || write_loop(rx, out));
        if let Err(e) = spawned {
            eprintln!("redline: cannot start the log writer thread: {e}");
        }
        LogWriter { tx, dropped: DropCounter::default() }
    }

    pub fn drop_counter(&self) -> DropCounter {
        self.dropped.clone()
    }

    fn send(&self, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        match self.tx.try_send(Message::Chunk(chunk)) {
            Ok(()) => {}
            Err(TrySendError::Full(Message::Chunk(c)) | TrySendError::Disconnected(Message::Chunk(c))) => {
                let lines = c.iter().filter(|&&b| b == b'\n').count() as u64;
                self.dropped.0.fetch_add(lines, Ordering::Relaxed);
            }
            Err(_) => {}
        }
    }

    /// Appends the line `build` writes to this thread's batch, or hands it over at once on a
    /// thread that does not batch.
    pub fn write_line(&self, build: impl FnOnce(&mut Vec<u8>)) {
        let mut build = Some(build);
        BATCH.with(|b| {
            if let Some(batch) = b.borrow_mut().as_mut()
                && let Some(build) = build.take()
            {
                build(&mut batch.buf);
                if batch.buf.len() >= CHUNK_BYTES {
                    let chunk = std::mem::replace(&mut batch.buf, Vec::with_capacity(BATCH_CAPACITY));
                    batch.writer.send(chunk);
                }
            }
        });
        if let Some(build) = build {
            let mut line = Vec::with_capacity(512);
            build(&mut line);
            self.send(line);
        }
    }

    /// From now on this thread batches its lines until [`flush_thread`] or a full chunk.
    pub fn batch_this_thread(&self) {
        BATCH.with(|b| *b.borrow_mut() = Some(Batch { buf: Vec::with_capacity(BATCH_CAPACITY), writer: self.clone() }));
    }

    /// Waits (up to `limit`) until every line handed over so far is written to stdout.
    pub fn flush(&self, limit: Duration) {
        flush_thread();
        let (ack_tx, ack_rx) = sync_channel(1);
        if self.tx.send(Message::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(limit);
        }
    }
}

/// Hands this thread's batched lines to the writer (called on a timer and at shutdown).
pub fn flush_thread() {
    BATCH.with(|b| {
        if let Some(batch) = b.borrow_mut().as_mut()
            && !batch.buf.is_empty()
        {
            let chunk = std::mem::replace(&mut batch.buf, Vec::with_capacity(BATCH_CAPACITY));
            batch.writer.send(chunk);
        }
    });
}

fn write_loop(rx: Receiver<Message>, out: impl Write) {
    let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, out);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Message::Chunk(c) => {
                    let _ = out.write_all(&c);
                }
                Message::Flush(ack) => {
                    let _ = out.flush();
                    let _ = ack.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        // Nothing more queued: push what is buffered out before waiting.
        let _ = out.flush();
    }
    let _ = out.flush();
}

/// One event's worth of output; the fmt layer writes a whole line in one `write`.
pub struct LineWriter<'a> {
    writer: &'a LogWriter,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let batched = BATCH.with(|b| match b.borrow_mut().as_mut() {
            Some(batch) => {
                batch.buf.extend_from_slice(line);
                if batch.buf.len() >= CHUNK_BYTES {
                    let chunk = std::mem::replace(&mut batch.buf, Vec::with_capacity(BATCH_CAPACITY));
                    batch.writer.send(chunk);
                }
                true
            }
            None => false,
        });
        if !batched {
            self.writer.send(line.to_vec());
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter { writer: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn batched_and_direct_lines_all_arrive_in_order_per_thread() {
        let sink = Sink::default();
        let w = LogWriter::start(sink.clone());
        w.make_writer().write_all(b"direct 1\n").unwrap();
        let w2 = w.clone();
        std::thread::spawn(move || {
            w2.batch_this_thread();
            for i in 0..2000 {
                w2.make_writer().write_all(format!("batched {i}\n").as_bytes()).unwrap();
            }
            flush_thread();
        })
        .join()
        .unwrap();
        w.flush(Duration::from_secs(5));
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let batched: Vec<&str> = text.lines().filter(|l| l.starts_with("batched")).collect();
        assert_eq!(batched.len(), 2000);
        assert_eq!(batched[1999], "batched 1999");
        assert!(text.starts_with("direct 1\n"));
        assert_eq!(w.drop_counter().dropped_lines(), 0);
    }

    #[test]
    fn a_stuck_stdout_drops_and_counts_lines_instead_of_blocking() {
        struct Stuck(std::sync::mpsc::Sender<()>);
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                let _ = self.0.send(());
                std::thread::sleep(Duration::from_secs(3600));
                Ok(0)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let w = LogWriter::start(Stuck(entered_tx));
        w.make_writer().write_all(b"first\n").unwrap();
        entered.recv_timeout(Duration::from_secs(10)).expect("the writer reaches stdout");
        // stdout now hangs: the queue fills, then every further line is dropped and counted.
        let started = std::time::Instant::now();
        for _ in 0..(QUEUE_CHUNKS + 10) {
            w.make_writer().write_all(b"line\n").unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "writing never waits");
        assert_eq!(w.drop_counter().dropped_lines(), 10);
    }
}
