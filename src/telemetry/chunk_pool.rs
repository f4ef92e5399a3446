//! Chunk buffers that go back to the proxy workers. A worker fills a buffer of access lines or
//! of encoded spans and hands it to another thread (the log writer, the span exporter). Freed
//! there, its pages went back to the kernel (mimalloc purges a span of a segment with
//! `madvise` once it has been free for 10 ms) and the worker's next buffer faulted them in
//! again: 0.044 page faults per request and 19 `madvise` calls a second under `wrk -t1 -c32`,
//! where the pool leaves 0.0003 and none (`perf stat`, docs/benchmarks.md). The written
//! buffers come back instead, so the same few stay mapped and warm in cache.

use std::sync::Arc;

use bytes::Bytes;
use crossbeam_queue::ArrayQueue;

/// Empty buffers of one size, waiting to be filled again.
pub struct ChunkPool {
    spare: ArrayQueue<Vec<u8>>,
    capacity: usize,
}

impl ChunkPool {
    /// A pool of up to `spares` buffers of `capacity` bytes.
    pub fn new(spares: usize, capacity: usize) -> ChunkPool {
        ChunkPool { spare: ArrayQueue::new(spares.max(1)), capacity }
    }

    /// An empty buffer of the pool's capacity: a spare one when there is one, else a new one.
    pub fn take(&self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    /// Keeps `buf`, emptied, for a later [`take`](Self::take). A buffer of another size (one
    /// that grew past the pool's, or a single line's) is freed, and so is one past the pool's
    /// spares: the pool holds at most `spares * capacity` bytes.
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == self.capacity {
            buf.clear();
            let _ = self.spare.push(buf);
        }
    }

    /// `buf` as `Bytes` that give the buffer back to `pool` when the last of them is dropped
    /// (a request body that the HTTP client drops once it is written).
    pub fn bytes(pool: &Arc<ChunkPool>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Returning { buf, pool: pool.clone() })
    }

    /// How many spare buffers are waiting.
    #[cfg(test)]
    pub(crate) fn spares(&self) -> usize {
        self.spare.len()
    }
}

/// The owner behind [`ChunkPool::bytes`].
struct Returning {
    buf: Vec<u8>,
    pool: Arc<ChunkPool>,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty() {
        let pool = ChunkPool::new(2, 64);
        let mut buf = pool.take();
        assert_eq!(buf.capacity(), 64);
        buf.extend_from_slice(b"line\n");
        let at = buf.as_ptr();
        pool.give(buf);
        let again = pool.take();
        assert_eq!(again.as_ptr(), at, "the same allocation comes back");
        assert!(again.is_empty());
        assert_eq!(again.capacity(), 64);
    }

    #[test]
    fn buffers_of_another_size_and_past_the_spares_are_freed() {
        let pool = ChunkPool::new(2, 64);
        let mut grown = pool.take();
        grown.extend_from_slice(&[0; 65]);
        pool.give(grown);
        pool.give(Vec::with_capacity(512));
        assert_eq!(pool.spares(), 0, "only buffers of the pool's size are kept");
        for _ in 0..3 {
            pool.give(Vec::with_capacity(64));
        }
        assert_eq!(pool.spares(), 2, "no more than the spares are kept");
    }

    #[test]
    fn bytes_give_their_buffer_back_when_the_last_clone_drops() {
        let pool = Arc::new(ChunkPool::new(2, 64));
        let mut buf = pool.take();
        buf.extend_from_slice(b"spans");
        let bytes = ChunkPool::bytes(&pool, buf);
        let part = bytes.slice(1..3);
        assert_eq!(&bytes[..], b"spans");
        drop(bytes);
        assert_eq!(pool.spares(), 0, "a slice still holds the buffer");
        assert_eq!(&part[..], b"pa");
        drop(part);
        assert_eq!(pool.spares(), 1);
        assert!(pool.take().is_empty());
    }
}
