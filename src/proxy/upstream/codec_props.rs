//! Property tests of the upstream response codec: `parse_response_head` and `ChunkedDecoder`
//! parse whatever the upstream sends. No input panics, a valid response round-trips however
//! it is split into reads, the body framing follows RFC 9112 section 6, and sizes past the
//! limits are errors rather than allocations. Case counts are bounded so that this file runs
//! in a few seconds in a debug `cargo test` (CI runs no fuzzer); `PROPTEST_CASES=N` runs more.
//! The cargo-fuzz targets in fuzz/ (nightly) explore the same two functions without a bound.

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

/// `cases` runs unless PROPTEST_CASES asks for another number. Failures are not persisted
/// (that would write files under src/); proptest prints the shrunk input instead.
fn config(cases: u32) -> ProptestConfig {
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { ProptestConfig::default().cases } else { cases };
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Reading a response the way `exchange` does: the head, then the body, from two reads.

/// What reading one response gave: the parts of the head that matter, the de-chunked body
/// (the bytes of a `Content-Length` body), and what was left in the buffer after it.
#[derive(Clone, Debug, PartialEq)]
struct Read {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    framing: BodyFraming,
    keep_alive: bool,
    body: Vec<u8>,
    rest: Vec<u8>,
}

/// Reads one response from `wire` arriving as two reads split at `at`. `Ok(None)`: the input
/// ended before the response did. Checks on the way what must hold for any input: the codec
/// only ever consumes from the front of the buffer, and never yields empty data.
fn read_split(wire: &[u8], at: usize, method: &Method, upgrading: bool) -> Result<Option<Read>, ProtocolError> {
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
    let mut body = Vec::new();
    match head.framing {
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            loop {
                match decoder.decode(&mut buf)? {
                    Chunk::Data(d) => {
                        assert!(!d.is_empty(), "empty data would make a reader spin");
                        body.extend_from_slice(&d);
                    }
                    Chunk::Trailers(t) => assert!(t.keys().all(allowed_in_trailers), "forbidden trailer field: {t:?}"),
                    Chunk::End => break,
                    Chunk::NeedMore => match more.take() {
                        Some(m) => buf.extend_from_slice(m),
                        None => return Ok(None),
                    },
                }
            }
            // The decoder is done: it says so again and consumes nothing more.
            let left = buf.len();
            assert_eq!(decoder.decode(&mut buf), Ok(Chunk::End));
            assert_eq!(buf.len(), left);
        }
        BodyFraming::Length(n) => {
            if let Some(m) = more.take() {
                buf.extend_from_slice(m);
            }
            if (buf.len() as u64) < n {
                return Ok(None);
            }
            body = buf.split_to(n as usize).to_vec();
        }
        BodyFraming::Empty | BodyFraming::UntilClose => {}
    }
    if let Some(m) = more.take() {
        buf.extend_from_slice(m);
    }
    assert!(wire.ends_with(&buf), "the buffer lost bytes other than from its front");
    Ok(Some(Read {
        status: head.status,
        version: head.version,
        headers: head.headers,
        framing: head.framing,
        keep_alive: head.keep_alive,
        body,
        rest: buf.to_vec(),
    }))
}

/// Whatever the split, an input too short to reach the buffering limits reads the same way.
fn same_for_every_split(wire: &[u8], method: &Method, upgrading: bool, splits: &[usize]) {
    assert!(wire.len() < MAX_CHUNK_LINE_BYTES, "longer inputs can meet a limit in one split and not another");
    let whole = read_split(wire, wire.len(), method, upgrading);
    for &at in splits {
        assert_eq!(read_split(wire, at, method, upgrading), whole, "split at {at} of {}", wire.len());
    }
}

// ---------------------------------------------------------------------------------------------
// Generated valid responses.

#[derive(Clone, Debug)]
struct WireChunk {
    data: Vec<u8>,
    upper: bool,
    zeros: usize,
    ext: String,
}

#[derive(Clone, Debug)]
struct Chunked {
    chunks: Vec<WireChunk>,
    last_ext: String,
    trailers: Vec<(String, String)>,
}

/// A field as sent: name (any case) and value.
type Field = (String, Vec<u8>);

#[derive(Clone, Debug)]
struct Response {
    /// 1xx answers before the final one, with their fields.
    interim: Vec<(u16, Vec<Field>)>,
    minor: u8,
    status: u16,
    reason: String,
    /// End-to-end fields.
    headers: Vec<Field>,
    /// `Connection` tokens, if the field is sent; `Hop-Only` also sends a field it names.
    connection: Option<Vec<&'static str>>,
    /// `Some`: chunked; `None`: `body` with a `Content-Length`.
    chunked: Option<Chunked>,
    body: Vec<u8>,
    /// What follows the response on the connection (the next response, or junk).
    after: Vec<u8>,
}

impl Response {
    fn wire(&self) -> Vec<u8> {
        let mut w = Vec::new();
        for (code, fields) in &self.interim {
            w.extend_from_slice(format!("HTTP/1.1 {code} Interim\r\n").as_bytes());
            push_fields(&mut w, fields.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(format!("HTTP/1.{} {} {}\r\n", self.minor, self.status, self.reason).as_bytes());
        push_fields(&mut w, self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        if let Some(tokens) = &self.connection {
            w.extend_from_slice(format!("Connection: {}\r\n", tokens.join(", ")).as_bytes());
            if tokens.contains(&"Hop-Only") {
                w.extend_from_slice(b"Hop-Only: 1\r\n");
            }
        }
        match &self.chunked {
            None => w.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes()),
            Some(c) => {
                w.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for chunk in &c.chunks {
                    let size = format!("{:0width$x}", chunk.data.len(), width = chunk.zeros + 1);
                    let size = if chunk.upper { size.to_ascii_uppercase() } else { size };
                    w.extend_from_slice(format!("{size}{}\r\n", chunk.ext).as_bytes());
                    w.extend_from_slice(&chunk.data);
                    w.extend_from_slice(b"\r\n");
                }
                w.extend_from_slice(format!("0{}\r\n", c.last_ext).as_bytes());
                push_fields(&mut w, c.trailers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
                w.extend_from_slice(b"\r\n");
            }
        }
        if self.chunked.is_none() {
            w.extend_from_slice(&self.body);
        }
        w.extend_from_slice(&self.after);
        w
    }

    /// What reading it must give.
    fn expected(&self) -> Read {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("generated names are tokens");
            headers.append(name, HeaderValue::from_bytes(value).expect("generated values are valid"));
        }
        let framing = match (&self.chunked, self.body.len()) {
            (Some(_), _) => BodyFraming::Chunked,
            (None, 0) => BodyFraming::Empty,
            (None, n) => BodyFraming::Length(n as u64),
        };
        if self.chunked.is_none() {
            headers.append(http::header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        let tokens = self.connection.as_deref().unwrap_or(&[]);
        // HTTP/1.0 with Transfer-Encoding closes, whatever `Connection` says (RFC 9112 6.1).
        let keep_alive = !tokens.contains(&"close")
            && (self.minor == 1 || (tokens.contains(&"keep-alive") && self.chunked.is_none()));
        Read {
            status: StatusCode::from_u16(self.status).expect("generated statuses are valid"),
            version: if self.minor == 0 { Version::HTTP_10 } else { Version::HTTP_11 },
            headers,
            framing,
            keep_alive,
            body: self.body.clone(),
            rest: self.after.clone(),
        }
    }
}

fn push_fields<'a>(w: &mut Vec<u8>, fields: impl Iterator<Item = (&'a str, &'a [u8])>) {
    for (name, value) in fields {
        w.extend_from_slice(name.as_bytes());
        w.extend_from_slice(b": ");
        w.extend_from_slice(value);
        w.extend_from_slice(b"\r\n");
    }
}

/// Names outside every hop-by-hop and framing field: `X-` and token characters, any case.
fn field_name() -> impl Strategy<Value = String> {
    "[xX]-[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

/// Field values: visible ASCII, obs-text and inner spaces and tabs (edges are trimmed on the wire).
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![8 => 0x21u8..=0x7e, 2 => Just(b' '), 1 => Just(b'\t'), 1 => 0x80u8..=0xff];
    prop::collection::vec(byte, 0..24).prop_map(|v| v.trim_ascii().to_vec())
}

fn chunk_ext() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => "(;[a-z]{1,8}(=[a-z0-9]{1,8})?){1,3}",
        1 => " ;[a-z]{1,6}=\"[ a-z]{0,6}\"",
    ]
}

fn chunked_body() -> impl Strategy<Value = Chunked> {
    let chunk = (prop::collection::vec(any::<u8>(), 1..48), any::<bool>(), 0usize..4, chunk_ext())
        .prop_map(|(data, upper, zeros, ext)| WireChunk { data, upper, zeros, ext });
    let trailer = ("[xX]-[Tt]-[a-z]{1,8}", "[a-z0-9]([ a-z0-9]{0,10}[a-z0-9])?");
    (prop::collection::vec(chunk, 0..6), chunk_ext(), prop::collection::vec(trailer, 0..3))
        .prop_map(|(chunks, last_ext, trailers)| Chunked { chunks, last_ext, trailers })
}

fn response() -> impl Strategy<Value = Response> {
    let interim = (
        prop_oneof![Just(100u16), Just(102), Just(103)],
        prop::collection::vec(("[Ll]ink", "</[a-z]{1,8}>".prop_map(String::into_bytes)), 0..2),
    );
    let connection = prop::option::of(prop::sample::subsequence(vec!["close", "keep-alive", "Hop-Only"], 1..=2));
    (
        prop::collection::vec(interim, 0..2),
        0u8..=1,
        (200u16..600).prop_filter("204 and 304 have no body", |s| *s != 204 && *s != 304),
        "[A-Za-z ]{0,12}",
        prop::collection::vec((field_name(), field_value()), 0..8),
        connection,
        prop::option::of(chunked_body()),
        prop::collection::vec(any::<u8>(), 0..160),
        prop::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(interim, minor, status, reason, headers, connection, chunked, body, after)| {
            let body = match &chunked {
                Some(c) => c.chunks.iter().flat_map(|c| c.data.iter().copied()).collect(),
                None => body,
            };
            Response { interim, minor, status, reason, headers, connection, chunked, body, after }
        })
}

/// Bytes that make up HTTP/1.1 responses, for mutations that reach past the first parse error.
fn token() -> impl Strategy<Value = Vec<u8>> {
    // Separated by '|', which none of them holds.
    const WORDS: &[u8] = b"\r\n|\r\n\r\n|\r|\n|: |:| |\t|;|,|=|\"|0|1|f|ffffffffffffffff|10000000000000000|\
        HTTP/1.1 |HTTP/1.0 |200 OK|100 Continue|101 |204 |304 |Content-Length: |Transfer-Encoding: |chunked|\
        gzip|Connection: |close|keep-alive|Upgrade: |0\r\n\r\n|\x00|\xff|\x7f";
    let words: Vec<&'static [u8]> = WORDS.split(|&b| b == b'|').collect();
    prop_oneof![
        3 => prop::sample::select(words).prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 1..8),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
}

/// Every split point for short inputs; a spread of them (ends included) for longer ones.
fn split_points(len: usize) -> Vec<usize> {
    if len <= 600 { (0..=len).collect() } else { (0..=len).step_by(len / 300 + 1).chain([len]).collect() }
}

/// A valid response, and the same cut, with arbitrary tokens appended and written over it.
fn mutation() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let tail = prop::collection::vec(token(), 0..8);
    let overwrites = prop::collection::vec((any::<Index>(), token()), 0..4);
    (response(), any::<Index>(), tail, overwrites).prop_map(|(r, cut, tail, overwrites)| {
        let valid = r.wire();
        let mut wire = valid.clone();
        wire.truncate(cut.index(wire.len() + 1));
        wire.extend(tail.concat());
        for (at, bytes) in overwrites {
            let at = at.index(wire.len() + 1);
            let end = (at + bytes.len()).min(wire.len());
            wire.splice(at..end, bytes);
        }
        (valid, wire)
    })
}

// ---------------------------------------------------------------------------------------------
// No input panics.

proptest! {
    #![proptest_config(config(256))]

    /// Arbitrary bytes, as a head and as a chunked body, under any split into two reads.
    #[test]
    fn arbitrary_bytes_never_panic(
        wire in prop::collection::vec(any::<u8>(), 0..512),
        at in any::<Index>(),
        method in method(),
        upgrading in any::<bool>(),
    ) {
        let at = at.index(wire.len() + 1);
        let _ = read_split(&wire, at, &method, upgrading);
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::from(&wire[..at]);
        let mut more = Some(&wire[at..]);
        while let Ok(chunk) = decoder.decode(&mut buf) {
            match chunk {
                Chunk::Data(d) => prop_assert!(!d.is_empty()),
                Chunk::Trailers(t) => assert!(t.keys().all(allowed_in_trailers), "forbidden trailer field: {t:?}"),
                Chunk::End => break,
                Chunk::NeedMore => match more.take() {
                    Some(m) => buf.extend_from_slice(m),
                    None => break,
                },
            }
        }
    }

    /// Arbitrary bytes and HTTP tokens appended to a cut valid response, or written over it:
    /// these get past the first lines and reach the framing and chunk parsers. The outcome is
    /// the same for every split of the input.
    #[test]
    fn mutated_responses_never_panic_and_read_alike_across_splits(
        (_, wire) in mutation(),
        method in method(),
        upgrading in any::<bool>(),
    ) {
        same_for_every_split(&wire, &method, upgrading, &split_points(wire.len()));
    }
}

/// The raw mode (for the fast path) reads a head as the map mode does: same outcome, status,
/// framing and reuse, and the same fields (names case-insensitively, values byte for byte, each
/// name's values in order), with `has_length`/`has_date` saying what the map holds.
fn raw_reads_as_map(wire: &[u8], method: &Method, upgrading: bool) -> Result<(), TestCaseError> {
    use std::collections::BTreeMap;
    let map = parse_response_head_as(&mut BytesMut::from(wire), method, upgrading, false);
    let raw = parse_response_head_as(&mut BytesMut::from(wire), method, upgrading, true);
    match (map, raw) {
        (Ok(Some(m)), Ok(Some(r))) => {
            prop_assert_eq!((m.status, m.framing, m.keep_alive), (r.status, r.framing, r.keep_alive));
            let Some(fields) = r.raw else {
                prop_assert!(upgrading, "raw fields asked for and not given");
                prop_assert_eq!(&m.headers, &r.headers);
                return Ok(());
            };
            prop_assert!(!upgrading && r.headers.is_empty());
            let mut got: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
            for (name, value) in fields.iter() {
                got.entry(String::from_utf8_lossy(name).to_ascii_lowercase()).or_default().push(value.to_vec());
            }
            let mut want: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
            for (name, value) in &m.headers {
                want.entry(name.as_str().to_string()).or_default().push(value.as_bytes().to_vec());
            }
            prop_assert_eq!(got, want);
            // Written on in runs of the head, the fields are the bytes written one by one.
            for without_length in [false, true] {
                let (mut runs, mut one_by_one) = (Vec::new(), Vec::new());
                fields.encode(&mut runs, without_length);
                for (name, value) in fields.iter() {
                    if !(without_length && RawFields::is(name, "content-length")) {
                        encode_field(&mut one_by_one, name, value);
                    }
                }
                prop_assert_eq!(runs, one_by_one);
            }
            prop_assert_eq!(fields.has_length, m.headers.contains_key(http::header::CONTENT_LENGTH));
            prop_assert_eq!(fields.has_date, m.headers.contains_key(http::header::DATE));
        }
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        (m, r) => prop_assert!(
            false,
            "map mode {:?}, raw mode {:?}",
            m.map(|h| h.map(|h| h.status)),
            r.map(|h| h.map(|h| h.status))
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// Valid responses, and the same cut and written over, read alike in both modes.
    #[test]
    fn raw_fields_are_the_map_fields((valid, wire) in mutation(), method in method(), upgrading in any::<bool>()) {
        raw_reads_as_map(&valid, &method, upgrading)?;
        raw_reads_as_map(&wire, &method, upgrading)?;
    }

    /// The framing and hop-by-hop fields (repeated lengths, codings, `Connection` lists).
    #[test]
    fn raw_fields_leave_out_what_the_map_leaves_out(f in framing_fields(), date in any::<bool>()) {
        let mut wire = f.head();
        if date {
            let end = wire.len() - 2;
            wire.splice(end..end, b"DATE: Sun, 06 Nov 1994 08:49:37 GMT\r\nX-Hop: gone\r\n".iter().copied());
        }
        raw_reads_as_map(&wire, &f.method, false)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Valid responses round-trip.

proptest! {
    #![proptest_config(config(96))]

    /// Status, version, end-to-end fields, framing and reuse are read as sent; the body comes
    /// out as it went in, de-chunked; what follows stays in the buffer. For every split point.
    #[test]
    fn valid_responses_round_trip_across_every_split(
        r in response(),
        method in prop::sample::select(vec![Method::GET, Method::POST, Method::DELETE]),
        upgrading in any::<bool>(),
    ) {
        let wire = r.wire();
        let want = r.expected();
        for at in split_points(wire.len()) {
            let got = read_split(&wire, at, &method, upgrading);
            prop_assert_eq!(got, Ok(Some(want.clone())), "split at {} of {}", at, wire.len());
        }
    }

    /// The response cut short anywhere is never complete, nor an error: more bytes are needed.
    #[test]
    fn truncated_responses_need_more_bytes(r in response(), cut in any::<Index>()) {
        let mut r = r;
        r.after.clear();
        let wire = r.wire();
        let cut = cut.index(wire.len());
        prop_assert_eq!(read_split(&wire[..cut], cut, &Method::GET, false), Ok(None), "cut at {}", cut);
    }
}

// ---------------------------------------------------------------------------------------------
// Framing.

/// Framing fields of a generated head.
#[derive(Clone, Debug)]
struct FramingFields {
    method: Method,
    minor: u8,
    status: u16,
    /// Each `Content-Length` field sent (all the same number; the conflicts are another test).
    content_length: Vec<String>,
    transfer_encoding: Option<&'static str>,
    connection: Option<&'static str>,
}

impl FramingFields {
    fn head(&self) -> Vec<u8> {
        let mut w = format!("HTTP/1.{} {} Whatever\r\n", self.minor, self.status).into_bytes();
        for cl in &self.content_length {
            w.extend_from_slice(format!("Content-Length: {cl}\r\n").as_bytes());
        }
        if let Some(te) = self.transfer_encoding {
            w.extend_from_slice(format!("Transfer-Encoding: {te}\r\n").as_bytes());
        }
        if let Some(c) = self.connection {
            w.extend_from_slice(format!("Connection: {c}\r\n").as_bytes());
        }
        w.extend_from_slice(b"X-App: 1\r\n\r\n");
        w
    }
}

fn framing_fields() -> impl Strategy<Value = FramingFields> {
    let length = prop_oneof![Just(0u64), 1u64..100_000, Just(MAX_LENGTH), 0..=MAX_LENGTH];
    let content_length = (length, 0usize..3, any::<bool>()).prop_map(|(n, fields, listed)| {
        // One field per entry; `listed` sends the second as "n, n" in one field.
        (0..fields).map(|i| if listed && i == 1 { format!("{n}, {n}") } else { n.to_string() }).collect()
    });
    let status = prop_oneof![Just(200u16), Just(204), Just(304), 200u16..600];
    (
        method(),
        0u8..=1,
        status,
        content_length,
        prop::option::of(prop::sample::select(vec!["chunked", "gzip, chunked", "gzip", "chunked, gzip", "Chunked"])),
        prop::option::of(prop::sample::select(vec!["close", "keep-alive", "Keep-Alive, X-Hop"])),
    )
        .prop_map(|(method, minor, status, content_length, transfer_encoding, connection)| FramingFields {
            method,
            minor,
            status,
            content_length,
            transfer_encoding,
            connection,
        })
}

/// The largest Content-Length accepted: 19 digits (u64 holds all of them, not all of 20).
const MAX_LENGTH: u64 = 9_999_999_999_999_999_999;

/// A value that is not a list of equal 1-to-19-digit decimals.
fn bad_content_length() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{20,24}",
        "[0-9]{0,3}[a-zA-Z+.;/-][0-9]{0,3}",
        "[0-9]{1,3}[ \t]+[0-9]{1,3}",
        "([0-9]{1,3})?,",
        ",[0-9]{1,3}",
        "0[xX][0-9a-f]{1,4}",
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// RFC 9112 section 6.3, checked against an oracle written from the RFC's list.
    #[test]
    fn framing_follows_rfc_9112(f in framing_fields()) {
        let head = parse_response_head(&mut BytesMut::from(&f.head()[..]), &f.method, false)
            .expect("valid head")
            .expect("complete head");
        let length = f.content_length.first().map(|n| n.parse::<u64>().expect("generated numbers"));
        let chunked_last = f.transfer_encoding.is_some_and(|te| te.to_ascii_lowercase().ends_with("chunked"));
        let bodiless = f.method == Method::HEAD || f.status == 204 || f.status == 304;
        // Step 1 of the RFC's list: HEAD, 204 and 304 never have a body, whatever the fields say.
        let (framing, reusable) = if bodiless {
            (BodyFraming::Empty, true)
        } else if f.transfer_encoding.is_some() {
            // Both fields: chunked wins, and the connection is not reused (a smuggling shape).
            if chunked_last { (BodyFraming::Chunked, length.is_none()) } else { (BodyFraming::UntilClose, false) }
        } else {
            match length {
                Some(0) => (BodyFraming::Empty, true),
                Some(n) => (BodyFraming::Length(n), true),
                None => (BodyFraming::UntilClose, false),
            }
        };
        prop_assert_eq!(head.framing, framing);
        if bodiless {
            prop_assert_eq!(head.framing, BodyFraming::Empty);
        }
        if f.transfer_encoding.is_some() && length.is_some() && !bodiless {
            prop_assert!(!head.keep_alive, "Transfer-Encoding beside Content-Length: the connection must go");
        }
        let close = f.connection == Some("close");
        let alive = f.minor == 1
            || (f.connection.is_some_and(|c| c.to_ascii_lowercase().contains("keep-alive")) && f.transfer_encoding.is_none());
        prop_assert_eq!(head.keep_alive, reusable && !close && alive);
        // The framing fields concern this connection: Transfer-Encoding never goes on, nor a
        // Content-Length beside it; a lone Content-Length does.
        prop_assert!(!head.headers.contains_key(http::header::TRANSFER_ENCODING));
        prop_assert!(!head.headers.contains_key(http::header::CONNECTION));
        prop_assert_eq!(
            head.headers.contains_key(http::header::CONTENT_LENGTH),
            f.transfer_encoding.is_none() && length.is_some()
        );
        prop_assert_eq!(&head.headers["x-app"], "1");
    }

    /// Two different lengths, in two fields or one, are an error whatever the method or status.
    #[test]
    fn conflicting_content_lengths_are_errors(
        a in any::<u64>(),
        b in any::<u64>(),
        one_field in any::<bool>(),
        method in method(),
        status in 200u16..600,
    ) {
        prop_assume!(a != b);
        let fields =
            if one_field { format!("Content-Length: {a}, {b}\r\n") } else { format!("Content-Length: {a}\r\nContent-Length: {b}\r\n") };
        let raw = format!("HTTP/1.1 {status} X\r\n{fields}\r\n");
        let got = parse_response_head(&mut BytesMut::from(raw.as_str()), &method, false);
        prop_assert!(matches!(got, Err(ProtocolError::ContentLength(_))), "{:?}", got);
    }

    /// A Content-Length that is not 1 to 19 decimal digits is an error, not a guess.
    #[test]
    fn malformed_content_lengths_are_errors(bad in bad_content_length()) {
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
        let got = parse_response_head(&mut BytesMut::from(raw.as_str()), &Method::GET, false);
        prop_assert!(matches!(got, Err(ProtocolError::ContentLength(_))), "{:?} gave {:?}", bad, got);
    }
}

// ---------------------------------------------------------------------------------------------
// Limits: sizes past them are errors, never allocations.

proptest! {
    #![proptest_config(config(16))]

    /// A head that never ends is refused once the buffer reaches MAX_HEAD_BYTES, however it
    /// arrives; before that, more bytes are needed.
    #[test]
    fn endless_heads_are_refused_at_the_limit(
        pieces in prop::collection::vec(1usize..16 * 1024, 1..64),
        many_fields in any::<bool>(),
    ) {
        let line: &[u8] = if many_fields { b"X-A: b\r\n" } else { b"aaaaaaaa" };
        let mut stream = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        while stream.len() < MAX_HEAD_BYTES + 16 * 1024 {
            stream.extend_from_slice(line);
        }
        let mut buf = BytesMut::new();
        let mut offset = 0;
        for piece in pieces.iter().cycle() {
            let end = (offset + piece).min(stream.len());
            buf.extend_from_slice(&stream[offset..end]);
            offset = end;
            let got = parse_response_head(&mut buf, &Method::GET, false);
            if many_fields && matches!(got, Err(ProtocolError::Head(httparse::Error::TooManyHeaders))) {
                break; // Past MAX_HEADERS fields, before the byte limit.
            }
            if buf.len() < MAX_HEAD_BYTES {
                prop_assert!(matches!(got, Ok(None)), "{} bytes: {:?}", buf.len(), got.map(|h| h.map(|h| h.status)));
            } else {
                prop_assert_eq!(got.map(|h| h.map(|h| h.status)), Err(ProtocolError::HeadTooLarge));
                break;
            }
            prop_assert!(offset < stream.len(), "the stream is longer than the limit");
        }
    }

    /// More than MAX_HEADERS fields is an error, not a bigger table.
    #[test]
    fn too_many_fields_are_refused(n in MAX_HEADERS + 1..3 * MAX_HEADERS) {
        let mut raw = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..n {
            raw.push_str(&format!("X-F{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        let got = parse_response_head(&mut BytesMut::from(raw.as_str()), &Method::GET, false);
        prop_assert!(matches!(got, Err(ProtocolError::Head(httparse::Error::TooManyHeaders))));
    }

    /// Any Content-Length of up to 19 digits is a number to count down, not a buffer to
    /// reserve; longer ones (from 10^19 to u64::MAX, and past it) are refused.
    #[test]
    fn huge_lengths_are_counted_not_allocated(n in prop_oneof![0..=MAX_LENGTH, MAX_LENGTH + 1..]) {
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\nabc");
        let mut buf = BytesMut::from(raw.as_str());
        let got = parse_response_head(&mut buf, &Method::GET, false).map(|h| h.map(|h| h.framing));
        if n > MAX_LENGTH {
            prop_assert_eq!(got, Err(ProtocolError::ContentLength(n.to_string())));
            let past = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}0\r\n\r\n");
            let got = parse_response_head(&mut BytesMut::from(past.as_str()), &Method::GET, false);
            prop_assert!(matches!(got, Err(ProtocolError::ContentLength(_))), "past u64::MAX");
        } else {
            prop_assert_eq!(got, Ok(Some(if n == 0 { BodyFraming::Empty } else { BodyFraming::Length(n) })));
            prop_assert_eq!(&buf[..], b"abc");
        }
    }

    /// A chunk size up to 16 hex digits is counted down as data arrives; the decoder hands out
    /// what is buffered, never more (the data here is shorter than the chunk). Longer sizes
    /// are errors.
    #[test]
    fn huge_chunk_sizes_are_counted_not_allocated(size in 64u64.., digits in 0usize..4, data in prop::collection::vec(any::<u8>(), 1..64)) {
        let hex = format!("{size:x}");
        let zeros = digits.min(16 - hex.len());
        let mut buf = BytesMut::from(format!("{}{hex}\r\n", "0".repeat(zeros)).as_bytes());
        buf.extend_from_slice(&data);
        let mut decoder = ChunkedDecoder::default();
        let mut out = Vec::new();
        loop {
            match decoder.decode(&mut buf).expect("valid so far") {
                Chunk::Data(d) => out.extend_from_slice(&d),
                Chunk::NeedMore => break,
                Chunk::Trailers(t) => assert!(t.keys().all(allowed_in_trailers), "forbidden trailer field: {t:?}"),
                Chunk::End => prop_assert!(false, "ended early"),
            }
        }
        prop_assert_eq!(out.len() as u64, size.min(data.len() as u64));
        let mut long = BytesMut::from(format!("1{}\r\n", "0".repeat(16)).as_bytes());
        prop_assert_eq!(ChunkedDecoder::default().decode(&mut long), Err(ProtocolError::Chunk));
    }

    /// A chunk-size line or trailer section that does not end within MAX_CHUNK_LINE_BYTES is an
    /// error however it arrives; so are more than 32 trailer fields.
    #[test]
    fn endless_chunk_lines_and_trailers_are_refused(
        pieces in prop::collection::vec(1usize..2048, 1..32),
        in_trailers in any::<bool>(),
        fields in 33usize..64,
    ) {
        let (prefix, filler, want): (&[u8], &[u8], _) = if in_trailers {
            (b"0\r\nX-Long: ", b"t", ProtocolError::Trailers)
        } else {
            (b"5;ext=", b"e", ProtocolError::Chunk)
        };
        let mut stream = prefix.to_vec();
        stream.resize(MAX_CHUNK_LINE_BYTES + 2048, filler[0]);
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut offset = 0;
        let mut pieces = pieces.iter().cycle();
        let got = loop {
            let piece = pieces.next().copied().unwrap_or(1);
            let end = (offset + piece).min(stream.len());
            buf.extend_from_slice(&stream[offset..end]);
            offset = end;
            match decoder.decode(&mut buf) {
                Ok(Chunk::NeedMore) if offset < stream.len() => prop_assert!(buf.len() < MAX_CHUNK_LINE_BYTES),
                other => break other,
            }
        };
        prop_assert_eq!(got, Err(want));

        let mut many = String::from("0\r\n");
        for i in 0..fields {
            many.push_str(&format!("X-T{i}: v\r\n"));
        }
        many.push_str("\r\n");
        prop_assert_eq!(ChunkedDecoder::default().decode(&mut BytesMut::from(many.as_str())), Err(ProtocolError::Trailers));
    }
}
