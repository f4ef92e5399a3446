//! Property tests of the HTTP/1.1 fast path's two codecs: `parse_head` reads whatever a client
//! sends and `encode_head` frames every response. No input panics; a head the fast path does
//! not take leaves the buffer exactly as it was (hyper then reads the same bytes); a head it
//! takes is what httparse reads, however it arrives in reads; what it writes is a head httparse
//! reads back, framed as RFC 9112 section 6 says. Case counts are bounded so that this file runs
//! in a few seconds in a debug `cargo test`; `PROPTEST_CASES=N` runs more.

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use proptest::prelude::*;

use super::*;

fn config(cases: u32) -> ProptestConfig {
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { ProptestConfig::default().cases } else { cases };
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

const LIMIT: usize = 8 * 1024;

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}"
}

/// Field names, the ones that take a request off the fast path among them, in any case.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => token(),
        1 => prop::sample::select(vec![
            "Content-Length", "transfer-encoding", "EXPECT", "upgrade", "Connection", "te", "keep-alive",
            "host", "user-agent", "accept", "traceparent",
        ])
        .prop_map(str::to_string),
    ]
}

fn field_value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![8 => 0x21u8..0x7f, 1 => Just(b' '), 1 => Just(b'\t'), 1 => 0x80u8..=0xff], 0..24)
        .prop_map(|mut v| {
            // Leading and trailing whitespace is not part of a value.
            while v.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                v.remove(0);
            }
            while v.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
                v.pop();
            }
            v
        })
}

/// A request head as a client writes it: valid, or with one thing a client might get wrong.
fn request_head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        prop::sample::select(vec!["GET", "HEAD", "POST", "DELETE", "OPTIONS", "CONNECT", "PRI"])
            .prop_map(str::to_string),
        token(),
    ];
    let target = prop_oneof![
        "/[a-zA-Z0-9/._~%?=&-]{0,20}",
        Just("*".to_string()),
        Just("http://example.com/x".to_string()),
        Just("example.com:443".to_string()),
    ];
    let version = prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1", "HTTP/1.1"]);
    let fields = prop::collection::vec((field_name(), field_value()), 0..8);
    (method, target, version, fields).prop_map(|(method, target, version, fields)| {
        let mut head = format!("{method} {target} {version}\r\n").into_bytes();
        for (name, value) in fields {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(&value);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head
    })
}

/// What httparse makes of a complete head, and whether the fast path should take it.
#[derive(Debug)]
struct Reference {
    len: usize,
    takes: bool,
    method: String,
    target: String,
    fields: Vec<(String, Vec<u8>)>,
}

fn reference(wire: &[u8]) -> Option<Reference> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let len = match req.parse(wire) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return None,
    };
    let method = req.method?.to_string();
    let target = req.path?.to_string();
    let fields: Vec<(String, Vec<u8>)> = req.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
    let takes = req.version == Some(1)
        && method != "CONNECT"
        && target.starts_with('/')
        && !fields.iter().any(|(n, _)| {
            ["content-length", "transfer-encoding", "expect", "upgrade", "connection", "te", "keep-alive"]
                .iter()
                .any(|f| n.eq_ignore_ascii_case(f))
        })
        && Uri::try_from(target.as_str()).is_ok()
        && fields
            .iter()
            .all(|(n, v)| HeaderName::from_bytes(n.as_bytes()).is_ok() && HeaderValue::from_bytes(v).is_ok());
    Some(Reference { len, takes, method, target, fields })
}

proptest! {
    #![proptest_config(config(512))]

    /// Any bytes: no panic, and the buffer is either untouched or lost exactly one head.
    #[test]
    fn any_bytes_are_taken_whole_or_left_alone(wire in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut buf = BytesMut::from(&wire[..]);
        match parse_head(&mut buf, LIMIT) {
            Ok(taken) => {
                prop_assert!(wire.ends_with(&buf) && buf.len() < wire.len());
                // Fields kept raw are ones `http` takes too (an HTTP/2 upstream gets them so).
                prop_assert!(taken.raw.as_ref().is_none_or(|raw| raw.header_map().is_some()));
            }
            Err(_) => prop_assert_eq!(&buf[..], &wire[..]),
        }
    }

    /// A client's head, then the start of the next, arriving in two reads split anywhere: the
    /// fast path takes exactly the heads httparse reads whole and it may serve, with the same
    /// method, target and fields; the next request's bytes stay in the buffer.
    #[test]
    fn heads_are_read_as_httparse_reads_them(head in request_head(), split in any::<prop::sample::Index>()) {
        let mut wire = head.clone();
        wire.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        let at = split.index(head.len());
        let mut buf = BytesMut::from(&wire[..at]);
        let first = parse_head(&mut buf, LIMIT);
        prop_assert!(first.is_err() || reference(&wire[..at]).is_some(), "taken before complete");
        if first.is_ok() {
            return Ok(());
        }
        prop_assert_eq!(&buf[..], &wire[..at]);
        buf.extend_from_slice(&wire[at..]);
        let expected = reference(&wire);
        match (parse_head(&mut buf, LIMIT), expected) {
            (Ok(taken), Some(Reference { len, takes: true, method, target, fields })) => {
                prop_assert_eq!(&buf[..], &wire[len..]);
                let req = &taken.request;
                prop_assert_eq!(req.method().as_str(), method.as_str());
                prop_assert_eq!(req.uri().to_string(), target);
                prop_assert_eq!(req.version(), Version::HTTP_11);
                prop_assert!(req.body().is_none());
                // Raw or in a map, the same fields.
                let headers = taken.fields();
                prop_assert_eq!(headers.len(), fields.len());
                for (name, value) in &fields {
                    prop_assert!(headers.get_all(name.as_str()).iter().any(|v| v.as_bytes() == &value[..]));
                }
            }
            (Ok(taken), other) => prop_assert!(false, "took {:?}; httparse: {:?}", taken, other),
            (Err(NotTaken::Other), Some(Reference { takes: false, .. }) | None) => prop_assert_eq!(&buf[..], &wire[..]),
            (Err(NotTaken::Other), Some(taken)) => prop_assert!(false, "left {:?}", taken),
            (Err(NotTaken::Partial), _) => prop_assert!(false, "a complete head read as partial"),
        }
    }

    /// Whatever the response, its head parses back as written, and its framing is RFC 9112's.
    #[test]
    fn responses_are_framed_as_rfc_9112_says(
        code in prop_oneof![Just(200u16), Just(204), Just(304), Just(404), Just(502), 100u16..600],
        fields in prop::collection::vec((token(), field_value()), 0..6),
        length in prop::option::of(0u64..100_000),
        with_date in any::<bool>(),
        ended in any::<bool>(),
        exact in prop::option::of(0u64..100_000),
        head_only in any::<bool>(),
        close in any::<bool>(),
    ) {
        let status = StatusCode::from_u16(code).expect("100..600");
        let mut headers = HeaderMap::new();
        for (name, value) in &fields {
            let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) else {
                continue;
            };
            headers.append(name, value);
        }
        if let Some(n) = length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        if with_date {
            headers.insert(header::DATE, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        }
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        let mut out = Vec::new();
        let framing = encode_head(&mut out, status, Fields::Map(&headers), BodyLength { ended, exact }, head_only, close);

        let mut storage = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut storage);
        prop_assert_eq!(resp.parse(&out), Ok(httparse::Status::Complete(out.len())));
        prop_assert_eq!(resp.code, Some(code));
        prop_assert_eq!(resp.version, Some(1));
        let all = |name: &str| -> Vec<Vec<u8>> {
            resp.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.to_vec()).collect()
        };
        prop_assert_eq!(all("date").len(), 1);
        prop_assert_eq!(all("connection"), if close { vec![b"close".to_vec()] } else { vec![] });
        let lengths = all("content-length");
        let chunked = all("transfer-encoding");
        prop_assert!(lengths.len() + chunked.len() <= 1, "one framing field at most: {:?}", String::from_utf8_lossy(&out));
        let bodiless = head_only || code < 200 || code == 204 || code == 304;
        if code < 200 || code == 204 {
            prop_assert!(lengths.is_empty() && chunked.is_empty());
        }
        if bodiless {
            prop_assert_eq!(framing, Framing::None);
            prop_assert!(chunked.is_empty());
        } else {
            match (length, ended, exact) {
                (Some(n), ..) => {
                    prop_assert_eq!(framing, Framing::Length);
                    prop_assert_eq!(lengths, vec![n.to_string().into_bytes()]);
                }
                (None, true, _) => {
                    prop_assert_eq!(framing, Framing::None);
                    prop_assert_eq!(lengths, vec![b"0".to_vec()]);
                }
                (None, false, Some(n)) => {
                    prop_assert_eq!(framing, Framing::Length);
                    prop_assert_eq!(lengths, vec![n.to_string().into_bytes()]);
                }
                (None, false, None) => {
                    prop_assert_eq!(framing, Framing::Chunked);
                    prop_assert_eq!(chunked, vec![b"chunked".to_vec()]);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// An upstream head written on raw (names in its own case) says what the same head
    /// written from its `HeaderMap` says: same status, framing, and fields.
    #[test]
    fn raw_fields_are_written_as_the_map_would_write_them(
        code in prop_oneof![Just(200u16), Just(204), Just(304), Just(404), 200u16..600],
        fields in prop::collection::vec((field_name(), field_value()), 0..8),
        length in prop::option::of(0u64..100_000),
        head_only in any::<bool>(),
        close in any::<bool>(),
    ) {
        use crate::proxy::upstream::codec::parse_response_head_as;
        let mut wire = format!("HTTP/1.1 {code} Whatever\r\n").into_bytes();
        for (name, value) in &fields {
            wire.extend_from_slice(format!("{name}: ").as_bytes());
            wire.extend_from_slice(value);
            wire.extend_from_slice(b"\r\n");
        }
        if let Some(n) = length {
            wire.extend_from_slice(format!("content-LENGTH: {n}\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        let method = if head_only { Method::HEAD } else { Method::GET };
        let parse = |raw| parse_response_head_as(&mut BytesMut::from(&wire[..]), &method, false, raw);
        let (Ok(Some(map)), Ok(Some(raw))) = (parse(false), parse(true)) else { return Ok(()) };
        let body = BodyLength { ended: false, exact: None };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let fa = encode_head(&mut a, map.status, Fields::Map(&map.headers), body, head_only, close);
        let fb = encode_head(&mut b, raw.status, Fields::Raw(raw.raw.as_deref().expect("raw")), body, head_only, close);
        prop_assert_eq!(fa, fb);
        let read = |bytes: &[u8]| -> Vec<(String, Vec<u8>)> {
            let mut storage = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut storage);
            assert_eq!(resp.parse(bytes), Ok(httparse::Status::Complete(bytes.len())));
            let mut fields: Vec<(String, Vec<u8>)> = resp
                .headers
                .iter()
                .filter(|h| !h.name.eq_ignore_ascii_case("date"))
                .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                .collect();
            fields.sort();
            fields
        };
        prop_assert_eq!(read(&a), read(&b));
    }
}

#[test]
fn heads_past_the_limit_are_left_to_hyper() {
    let mut head = b"GET / HTTP/1.1\r\nhost: a\r\nx-big: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', LIMIT));
    let mut buf = BytesMut::from(&head[..]);
    assert!(parse_head(&mut buf, LIMIT).err() == Some(NotTaken::Other), "partial past the limit");
    head.extend_from_slice(b"\r\n\r\n");
    let mut buf = BytesMut::from(&head[..]);
    assert!(parse_head(&mut buf, LIMIT).err() == Some(NotTaken::Other), "complete past the limit");
    assert_eq!(buf.len(), head.len());
}

#[test]
fn the_http2_preface_is_left_to_hyper() {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    for at in 1..=preface.len() {
        let mut buf = BytesMut::from(&preface[..at]);
        assert!(parse_head(&mut buf, LIMIT).is_err());
        assert_eq!(&buf[..], &preface[..at]);
    }
}

#[test]
fn a_plain_get_is_taken_raw_and_one_with_tracestate_in_a_map_with_room_for_the_forwarding_fields() {
    let mut buf = BytesMut::from(&b"GET /a?b=c HTTP/1.1\r\nHost: x:1\r\nAccept: */*\r\n\r\nGET"[..]);
    let taken = parse_head(&mut buf, LIMIT).expect("taken");
    assert_eq!(&buf[..], b"GET");
    assert_eq!(taken.request.method(), Method::GET);
    assert_eq!(taken.request.uri().path_and_query().map(|p| p.as_str()), Some("/a?b=c"));
    assert!(taken.request.headers().is_empty());
    assert_eq!(taken.raw.as_ref().map(|r| r.host()), Some(&b"x:1"[..]));

    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: x:1\r\ntracestate: a=b\r\n\r\n"[..]);
    let taken = parse_head(&mut buf, LIMIT).expect("taken");
    assert!(taken.raw.is_none());
    assert_eq!(taken.request.headers()["host"], "x:1");
    assert!(taken.request.headers().capacity() >= 8);
}

#[test]
fn heads_with_more_fields_than_the_fast_path_reads_are_left_to_hyper() {
    let mut head = b"GET / HTTP/1.1\r\nhost: a\r\n".to_vec();
    for i in 0..MAX_HEADERS {
        head.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let mut buf = BytesMut::from(&head[..]);
    assert_eq!(parse_head(&mut buf, LIMIT).err(), Some(NotTaken::Other));
    assert_eq!(&buf[..], &head[..]);
}

#[test]
fn common_names_are_the_names_http_parses() {
    for name in [
        "Host",
        "host",
        "User-Agent",
        "user-agent",
        "Accept",
        "accept",
        "Accept-Encoding",
        "accept-encoding",
        "Accept-Language",
        "accept-language",
        "Authorization",
        "authorization",
        "Cache-Control",
        "cache-control",
        "Content-Type",
        "content-type",
        "Cookie",
        "cookie",
        "Origin",
        "origin",
        "Referer",
        "referer",
        "HOST",
        "X-Other",
    ] {
        assert_eq!(raw_request::header_name(name.as_bytes()), HeaderName::from_bytes(name.as_bytes()).ok(), "{name}");
    }
    assert_eq!(raw_request::header_name(b"bad name"), None);
}

#[test]
fn chunk_size_lines_are_lowercase_hex() {
    for len in [0usize, 1, 9, 10, 15, 16, 255, 4096, 65_535, 1 << 20, usize::MAX] {
        let mut out = Vec::new();
        chunk_size_line(&mut out, len);
        assert_eq!(out, format!("{len:x}\r\n").into_bytes());
    }
}
