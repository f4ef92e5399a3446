//! Writing a record made of many small pieces (a span's protobuf, an access line) into a byte
//! buffer. Through `Vec::push` and `extend_from_slice` every piece re-reads the vector's length
//! and capacity from memory, since a byte store may alias them and the compiler cannot keep
//! them in registers: about half of a span's encoding in callgrind. [`in_room`] makes room for
//! the most a record can take in one go and writes through an index instead.

/// Where a record's bytes go: a `Vec` (the plain way, and the fallback) or a [`Cursor`].
pub trait Out {
    fn byte(&mut self, b: u8);
    fn bytes(&mut self, b: &[u8]);
}

impl Out for Vec<u8> {
    fn byte(&mut self, b: u8) {
        self.push(b);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

/// Room made in one go, written through an index. Past its end, writes are skipped but
/// counted: `at` beyond the room tells [`in_room`] to write the record again (never a panic).
pub struct Cursor<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Out for Cursor<'_> {
    #[inline(always)]
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.out.get_mut(self.at) {
            *slot = b;
        }
        self.at += 1;
    }

    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) {
        if let Some(room) = self.out.get_mut(self.at..self.at + b.len()) {
            room.copy_from_slice(b);
        }
        self.at += b.len();
    }
}

/// Appends a record to `buf`: `fast` writes it into `room` bytes made at the end; if it wrote
/// more (`room` was an estimate that fell short), `slow` writes it again into the `Vec` itself.
/// `fast` and `slow` are the same generic writer, given one `Out` or the other.
#[inline(always)]
pub fn in_room(buf: &mut Vec<u8>, room: usize, fast: impl FnOnce(&mut Cursor<'_>), slow: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.resize(start + room, 0);
    let mut cursor = Cursor { out: &mut buf[start..], at: 0 };
    fast(&mut cursor);
    let written = cursor.at;
    if written <= room {
        buf.truncate(start + written);
    } else {
        buf.truncate(start);
        slow(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(out: &mut impl Out) {
        out.bytes(b"abc");
        out.byte(b'x');
        out.bytes(b"de");
        out.byte(b'f');
    }

    #[test]
    fn a_cursor_short_of_room_counts_what_it_skips() {
        let mut room = [0u8; 4];
        let mut out = Cursor { out: &mut room, at: 0 };
        write(&mut out);
        assert_eq!(out.at, 7, "every byte is counted");
        assert_eq!(&room, b"abcx", "what fits is written, the rest skipped, nothing panics");
    }

    #[test]
    fn a_record_past_its_room_is_written_again_whole() {
        for room in [0, 3, 6, 7, 100] {
            let mut buf = b"head ".to_vec();
            in_room(&mut buf, room, |c| write(c), write);
            assert_eq!(buf, b"head abcxdef", "room {room}");
        }
    }
}
