//! Fuzzes the proxy's decoder of chunked upstream bodies (`ChunkedDecoder`) on its own.
//! Input: a byte placing the split between two reads, then the body bytes. Nothing may panic,
//! data is never empty nor more than what was consumed, the decoder consumes only from the
//! front of the buffer, stays ended once ended, and an input too short to meet the line limit
//! decodes the same way however it is split.
//! CI runs the stable equivalent: src/proxy/upstream/codec_props.rs (proptest).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use redline::proxy::upstream::codec::{Chunk, ChunkedDecoder, ProtocolError};

/// The decoder's line limit (private in the codec): below it, splits cannot matter.
const SPLIT_INVARIANT_BELOW: usize = 4 * 1024;

/// The body decoded, whether it ended, and what was left after it; or the error.
fn decode(wire: &[u8], at: usize) -> Result<(Vec<u8>, bool, Vec<u8>), ProtocolError> {
    let mut decoder = ChunkedDecoder::default();
    let mut buf = BytesMut::from(&wire[..at]);
    let mut more = Some(&wire[at..]);
    let mut body = Vec::new();
    let ended = loop {
        match decoder.decode(&mut buf)? {
            Chunk::Data(d) => {
                assert!(!d.is_empty(), "empty data would make a reader spin");
                body.extend_from_slice(&d);
            }
            Chunk::Trailers(t) => assert!(t.keys().all(redline::proxy::upstream::codec::allowed_in_trailers), "forbidden trailer field: {t:?}"),
            Chunk::End => break true,
            Chunk::NeedMore => match more.take() {
                Some(m) => buf.extend_from_slice(m),
                None => break false,
            },
        }
    };
    if ended {
        let left = buf.len();
        assert_eq!(decoder.decode(&mut buf), Ok(Chunk::End), "ended stays ended");
        assert_eq!(buf.len(), left, "nothing is consumed after the end");
    }
    if let Some(m) = more.take() {
        buf.extend_from_slice(m);
    }
    assert!(wire.ends_with(&buf), "the buffer lost bytes other than from its front");
    assert!(body.len() <= wire.len() - buf.len(), "more data out than bytes consumed");
    Ok((body, ended, buf.to_vec()))
}

fuzz_target!(|data: &[u8]| {
    let [split, wire @ ..] = data else { return };
    let at = usize::from(*split) * wire.len() / 255;
    let whole = decode(wire, wire.len());
    let split = decode(wire, at);
    if wire.len() < SPLIT_INVARIANT_BELOW {
        assert_eq!(split, whole, "split at {at}");
    }
});
