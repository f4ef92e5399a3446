//! The non-blocking stdout writer behind the JSON log. Proxy worker threads collect lines in a
//! thread-local batch and hand whole chunks to one writer thread; other threads hand each line
//! over at once. When the writer cannot keep up, chunks are dropped and their lines counted.
//!
//! The hand-over is a bounded lock-free queue that the writer thread drains on a short tick
//! while there is work, and that wakes it only from idle. A channel that woke the writer for
//! every chunk cost each one two futex calls on the worker and a contended lock between the
//! two threads (strace: about 7 system calls per chunk, 0.08 per request), and a context switch
//! on two shared cores; the queue costs a worker no system call at all.

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use tracing_subscriber::fmt::MakeWriter;

use super::chunk_pool::ChunkPool;

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
/// Written batches kept for the workers to fill again (`chunk_pool`): about what the workers
/// hand over in one `BUSY_TICK` at 40,000 lines per second, 384 KiB at most.
const SPARE_BATCHES: usize = 8;
/// While it finds lines to write, the writer looks at the queue this often (workers hand their
/// batches over on their own 50 ms tick, or sooner when full).
const BUSY_TICK: Duration = Duration::from_millis(20);
/// An idle writer is woken by the next chunk; it also looks this often, in case its last
/// writer was dropped.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// What the threads that log share with the writer thread.
struct Shared {
    chunks: ArrayQueue<Vec<u8>>,
    /// Batch buffers the writer has written, for the workers' next batches.
    batches: ChunkPool,
    /// Set while the writer waits with nothing to do: the next chunk wakes it.
    idle: AtomicBool,
    /// Callers of [`LogWriter::flush`] waiting for an answer (rare: at shutdown).
    flushes: Mutex<Vec<SyncSender<()>>>,
    /// The writer thread, to wake it.
    thread: OnceLock<Thread>,
    /// `IDLE_TICK`, but in tests.
    idle_tick: Duration,
}

impl Shared {
    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
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
    shared: Arc<Shared>,
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
        Self::start_with(out, IDLE_TICK)
    }

    /// `start`, with the idle writer's own look every `idle_tick`.
    fn start_with(out: impl Write + Send + 'static, idle_tick: Duration) -> LogWriter {
        let shared = Arc::new(Shared {
            idle_tick,
            chunks: ArrayQueue::new(QUEUE_CHUNKS),
            batches: ChunkPool::new(SPARE_BATCHES, BATCH_CAPACITY),
            idle: AtomicBool::new(false),
            flushes: Mutex::new(Vec::new()),
            thread: OnceLock::new(),
        });
        let theirs = shared.clone();
        let spawned =
            std::thread::Builder::new().name("redline-log-writer".into()).spawn(move || write_loop(theirs, out));
        match spawned {
            Ok(handle) => {
                let _ = shared.thread.set(handle.thread().clone());
            }
            Err(e) => eprintln!("redline: cannot start the log writer thread: {e}"),
        }
        LogWriter { shared, dropped: DropCounter::default() }
    }

    pub fn drop_counter(&self) -> DropCounter {
        self.dropped.clone()
    }

    /// Queues `chunk`; `wake` asks for it to be written now rather than on the writer's next
    /// tick (lines handed over one by one).
    fn send(&self, chunk: Vec<u8>, wake: bool) {
        if chunk.is_empty() {
            return;
        }
        match self.shared.chunks.push(chunk) {
            Ok(()) => {
                // Pairs with the writer's fence between marking itself idle and its last look
                // at the queue: either it sees this chunk, or this sees it idle.
                std::sync::atomic::fence(Ordering::SeqCst);
                if wake || self.shared.idle.load(Ordering::Relaxed) || self.shared.chunks.len() > QUEUE_CHUNKS / 2 {
                    self.shared.wake();
                }
            }
            Err(c) => {
                let lines = c.iter().filter(|&&b| b == b'\n').count() as u64;
                self.dropped.0.fetch_add(lines, Ordering::Relaxed);
            }
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
                    let chunk = std::mem::replace(&mut batch.buf, batch.writer.shared.batches.take());
                    batch.writer.send(chunk, false);
                }
            }
        });
        if let Some(build) = build {
            let mut line = Vec::with_capacity(512);
            build(&mut line);
            self.send(line, true);
        }
    }

    /// From now on this thread batches its lines until [`flush_thread`] or a full chunk.
    pub fn batch_this_thread(&self) {
        BATCH.with(|b| *b.borrow_mut() = Some(Batch { buf: self.shared.batches.take(), writer: self.clone() }));
    }

    /// Waits (up to `limit`) until every line handed over so far is written to stdout.
    pub fn flush(&self, limit: Duration) {
        flush_thread();
        // No writer thread (it could not be started): nobody would answer.
        if self.shared.thread.get().is_none() {
            return;
        }
        let (ack_tx, ack_rx) = sync_channel(1);
        if let Ok(mut waiting) = self.shared.flushes.lock() {
            waiting.push(ack_tx);
        }
        self.shared.wake();
        let _ = ack_rx.recv_timeout(limit);
    }
}

/// Hands this thread's batched lines to the writer (called on a timer and at shutdown).
pub fn flush_thread() {
    BATCH.with(|b| {
        if let Some(batch) = b.borrow_mut().as_mut()
            && !batch.buf.is_empty()
        {
            let chunk = std::mem::replace(&mut batch.buf, batch.writer.shared.batches.take());
            batch.writer.send(chunk, false);
        }
    });
}

/// The writer thread: drains the queue on `BUSY_TICK` while there are lines, waits to be woken
/// when there are none, and ends once every `LogWriter` is gone and the queue is drained.
fn write_loop(s: Arc<Shared>, out: impl Write) {
    let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, out);
    loop {
        // Flushes asked for before this look: the chunks their callers queued first are in
        // the queue now, and are written before the answer.
        let acks = s.flushes.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default();
        let mut wrote = false;
        while let Some(chunk) = s.chunks.pop() {
            // A chunk past the buffer's size goes to `out` without being copied into it.
            let _ = out.write_all(&chunk);
            s.batches.give(chunk);
            wrote = true;
        }
        let _ = out.flush();
        for ack in acks {
            let _ = ack.send(());
        }
        if wrote {
            std::thread::park_timeout(BUSY_TICK);
            continue;
        }
        // Only this thread holds the queue: no line can come any more.
        if Arc::strong_count(&s) == 1 {
            return;
        }
        s.idle.store(true, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::SeqCst);
        if s.chunks.is_empty() && s.flushes.lock().is_ok_and(|w| w.is_empty()) {
            std::thread::park_timeout(s.idle_tick);
        }
        s.idle.store(false, Ordering::Relaxed);
    }
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
                    let chunk = std::mem::replace(&mut batch.buf, batch.writer.shared.batches.take());
                    batch.writer.send(chunk, false);
                }
                true
            }
            None => false,
        });
        if !batched {
            self.writer.send(line.to_vec(), true);
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
    fn written_batches_go_back_to_the_workers_and_come_again_empty() {
        let sink = Sink::default();
        let w = LogWriter::start(sink.clone());
        let w2 = w.clone();
        let worker = std::thread::spawn(move || {
            w2.batch_this_thread();
            w2.write_line(|b| b.extend_from_slice(b"one\n"));
            flush_thread();
        });
        worker.join().unwrap();
        w.flush(Duration::from_secs(5));
        assert_eq!(w.shared.batches.spares(), 1, "the written batch is kept for the next one");
        // A batch started on the kept buffer holds only its own lines.
        let w3 = w.clone();
        std::thread::spawn(move || {
            w3.batch_this_thread();
            w3.write_line(|b| b.extend_from_slice(b"two\n"));
            flush_thread();
        })
        .join()
        .unwrap();
        w.flush(Duration::from_secs(5));
        assert_eq!(String::from_utf8(sink.0.lock().unwrap().clone()).unwrap(), "one\ntwo\n");
    }

    /// Polls `sink` until it holds `want` lines, for at most 10 s.
    fn wait_for_lines(sink: &Sink, want: usize) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let n = sink.0.lock().unwrap().iter().filter(|&&b| b == b'\n').count();
            if n >= want || std::time::Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_batched_chunk_wakes_an_idle_writer_and_a_busy_one_writes_on_its_tick() {
        // The idle writer's own look is an hour away: only the wake can get these lines out.
        let sink = Sink::default();
        let w = LogWriter::start_with(sink.clone(), Duration::from_secs(3600));
        let idle = || w.shared.idle.load(Ordering::Relaxed);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !idle() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(idle(), "a writer with nothing to write waits");
        let w2 = w.clone();
        let worker = std::thread::spawn(move || {
            w2.batch_this_thread();
            w2.write_line(|b| b.extend_from_slice(b"first\n"));
            flush_thread();
            // Whether the writer is still busy with the first chunk or idle again, this one
            // gets out too: on its tick, or by waking it.
            w2.write_line(|b| b.extend_from_slice(b"second\n"));
            flush_thread();
        });
        worker.join().unwrap();
        assert_eq!(wait_for_lines(&sink, 2), 2, "both chunks written without a flush");
        assert_eq!(String::from_utf8(sink.0.lock().unwrap().clone()).unwrap(), "first\nsecond\n");
    }

    #[test]
    fn the_writer_ends_once_every_handle_is_gone_and_writes_what_was_left() {
        let sink = Sink::default();
        let w = LogWriter::start_with(sink.clone(), Duration::from_millis(10));
        let thread = w.shared.thread.get().cloned();
        w.make_writer().write_all(b"last words\n").unwrap();
        let weak = Arc::downgrade(&w.shared);
        drop(w);
        assert!(thread.is_some());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while weak.strong_count() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(weak.strong_count(), 0, "the writer thread let go of the queue");
        assert_eq!(String::from_utf8(sink.0.lock().unwrap().clone()).unwrap(), "last words\n");
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
