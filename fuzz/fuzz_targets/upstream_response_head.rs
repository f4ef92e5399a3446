//! Fuzzes the proxy's parser of upstream response heads (`parse_response_head`), followed by
//! the chunked decoder when the head says the body is chunked. Input: a control byte (method,
//! upgrade flag), a byte placing the split between two reads, then the bytes the upstream sent.
//! Nothing may panic, the codec may only consume from the front of the buffer, an input too
//! short to meet a buffering limit must read the same way however it is split, and the raw
//! mode (`parse_response_head_as`, for the sidecar's fast path) must read it as the map mode.
//! CI runs the stable equivalent: src/proxy/upstream/codec_props.rs (proptest).
#![no_main]

use bytes::BytesMut;
use http::{HeaderMap, Method, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use redline::proxy::upstream::codec::{
    BodyFraming, Chunk, ChunkedDecoder, ProtocolError, parse_response_head, parse_response_head_as,
};

/// The chunked decoder's line limit (private in the codec): below it, splits cannot matter.
const SPLIT_INVARIANT_BELOW: usize = 4 * 1024;

/// What reading one response gave, comparable across splits.
type Outcome = Result<Option<(StatusCode, HeaderMap, BodyFraming, bool, Vec<u8>, Vec<u8>)>, ProtocolError>;

fn read(wire: &[u8], at: usize, method: &Method, upgrading: bool) -> Outcome {
    let mut buf = BytesMut::from(&wire[..at]);
    let mut more = Some(&wire[at..]);
    let head = loop {
        if let Some(head) = parse_response_head(&mut buf, method, upgrading)? {
            break head;
        }
        match more.take() {
            Some(m) => buf.extend_from_slice(m),
            None => return Ok(None),
        }
    };
    assert!(!head.headers.contains_key(header::TRANSFER_ENCODING), "transfer-encoding is hop-by-hop");
    if method == Method::HEAD || head.status == StatusCode::NO_CONTENT || head.status == StatusCode::NOT_MODIFIED {
        assert_eq!(head.framing, BodyFraming::Empty);
    }
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        assert!(upgrading && !head.keep_alive, "a 101 is final only for an upgrade, and never reused");
    }
    let mut body = Vec::new();
    if head.framing == BodyFraming::Chunked {
        let mut decoder = ChunkedDecoder::default();
        loop {
            match decoder.decode(&mut buf)? {
                Chunk::Data(d) => {
                    assert!(!d.is_empty(), "empty data would make a reader spin");
                    body.extend_from_slice(&d);
                }
                Chunk::Trailers(t) => assert!(t.keys().all(redline::proxy::upstream::codec::allowed_in_trailers), "forbidden trailer field: {t:?}"),
                Chunk::End => break,
                Chunk::NeedMore => match more.take() {
                    Some(m) => buf.extend_from_slice(m),
                    None => return Ok(None),
                },
            }
        }
    }
    if let Some(m) = more.take() {
        buf.extend_from_slice(m);
    }
    assert!(wire.ends_with(&buf), "the buffer lost bytes other than from its front");
    Ok(Some((head.status, head.headers, head.framing, head.keep_alive, body, buf.to_vec())))
}

fuzz_target!(|data: &[u8]| {
    let [control, split, wire @ ..] = data else { return };
    let method = match control % 3 {
        0 => Method::GET,
        1 => Method::HEAD,
        _ => Method::POST,
    };
    let upgrading = control & 0x80 != 0;
    let at = usize::from(*split) * wire.len() / 255;
    let whole = read(wire, wire.len(), &method, upgrading);
    let split = read(wire, at, &method, upgrading);
    if wire.len() < SPLIT_INVARIANT_BELOW {
        assert_eq!(split, whole, "split at {at}");
    }
    raw_reads_as_map(wire, &method, upgrading);
});

/// The raw mode (the sidecar's fast path) reads a head as the map mode does: same outcome,
/// status, framing and reuse, and the same fields (names case-insensitively, each name's
/// values in order).
fn raw_reads_as_map(wire: &[u8], method: &Method, upgrading: bool) {
    let map = parse_response_head_as(&mut BytesMut::from(wire), method, upgrading, false);
    let raw = parse_response_head_as(&mut BytesMut::from(wire), method, upgrading, true);
    match (map, raw) {
        (Ok(Some(m)), Ok(Some(r))) => {
            assert_eq!((m.status, m.framing, m.keep_alive), (r.status, r.framing, r.keep_alive));
            let Some(fields) = r.raw else {
                assert!(upgrading, "raw fields asked for and not given");
                return;
            };
            let mut got: Vec<(String, Vec<u8>)> =
                fields.iter().map(|(n, v)| (String::from_utf8_lossy(n).to_ascii_lowercase(), v.to_vec())).collect();
            let mut want: Vec<(String, Vec<u8>)> =
                m.headers.iter().map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec())).collect();
            // Each name's values keep their order (a stable sort by name); names are a set.
            got.sort_by(|a, b| a.0.cmp(&b.0));
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got, want);
            assert_eq!(fields.has_length, m.headers.contains_key(header::CONTENT_LENGTH));
            assert_eq!(fields.has_date, m.headers.contains_key(header::DATE));
        }
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        (m, r) => panic!("map mode {:?}, raw mode {:?}", m.map(|h| h.map(|h| h.status)), r.map(|h| h.map(|h| h.status))),
    }
}
