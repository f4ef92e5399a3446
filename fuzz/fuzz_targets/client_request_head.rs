//! Fuzzes the sidecar's HTTP/1.1 fast-path reader of client request heads
//! (`redline::proxy::h1::parse_head`). Input: a byte placing the split between two reads, then
//! the bytes the client sent. Nothing may panic; a head the fast path does not take must leave
//! the buffer exactly as it was (hyper then reads the same bytes); one it takes must leave
//! exactly the bytes after it; fields it keeps raw must be ones `http` takes; and the outcome
//! may not depend on where the reads split.
//! CI runs the stable equivalent: src/proxy/h1_props.rs (proptest).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use redline::proxy::h1::{NotTaken, parse_head};

const LIMIT: usize = 8 * 1024;

/// (method, target, header count, bytes left) for a taken head; the reason otherwise.
type Outcome = Result<(String, String, usize, Vec<u8>), NotTaken>;

fn read(wire: &[u8], at: usize) -> Outcome {
    let mut buf = BytesMut::from(&wire[..at]);
    let first = parse_head(&mut buf, LIMIT);
    let outcome = match first {
        Err(NotTaken::Partial) if at < wire.len() => {
            assert_eq!(&buf[..], &wire[..at], "a partial head leaves the buffer alone");
            buf.extend_from_slice(&wire[at..]);
            parse_head(&mut buf, LIMIT)
        }
        other => {
            buf.extend_from_slice(&wire[at..]);
            other
        }
    };
    match outcome {
        Ok(taken) => {
            assert!(wire.ends_with(&buf) && buf.len() < wire.len(), "a taken head leaves what follows it");
            if let Some(raw) = &taken.raw {
                assert!(raw.header_map().is_some(), "fields kept raw are fields `http` takes");
            }
            let req = &taken.request;
            Ok((req.method().to_string(), req.uri().to_string(), taken.fields().len(), buf.to_vec()))
        }
        Err(e) => {
            assert_eq!(&buf[..], wire, "a head left to hyper is left untouched");
            Err(e)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, wire)) = data.split_first() else { return };
    let whole = read(wire, wire.len());
    let at = usize::from(split) * wire.len() / 255;
    // A head taken in the first read may leave a later one the whole input would also take:
    // only a first read that was not complete must agree with the whole.
    let mut probe = BytesMut::from(&wire[..at]);
    if let Err(NotTaken::Partial) = parse_head(&mut probe, LIMIT) {
        assert_eq!(read(wire, at), whole, "the split changed the outcome");
    }
});
