//! Property tests of the raw request form: the fast path keeps a request raw exactly when the
//! module doc says, and the upstream head written from the raw fields says what the header
//! map's rules (`forward::prepare_upstream_headers`, `TraceContext::inject`,
//! `codec::encode_request_head`) would write: the same request line, and for every field name
//! (in any case) the same values in the same order. The trace context read from the raw
//! `traceparent` is the one read from the map. `PROPTEST_CASES=N` runs more cases.

use std::collections::BTreeMap;

use bytes::BytesMut;
use http::Method;
use http::header::{self, HeaderValue};
use proptest::prelude::*;

use super::*;
use crate::proxy::conn::ClientInfo;
use crate::proxy::forward::{Host, prepare_upstream_headers};
use crate::proxy::h1::{NotTaken, parse_head};
use crate::proxy::upstream::codec::{RequestFields, RequestFraming};
use crate::telemetry::trace_context::TraceContext;

fn config(cases: u32) -> ProptestConfig {
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { ProptestConfig::default().cases } else { cases };
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

const LIMIT: usize = 8 * 1024;

/// `name` in a case a client might write it in.
fn any_case(name: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(name.to_string()),
        Just(name.to_ascii_uppercase()),
        Just(name.split('-').map(|w| w[..1].to_ascii_uppercase() + &w[1..]).collect::<Vec<_>>().join("-")),
    ]
}

fn traceparent() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Valid, sampled or not.
        (any::<[u8; 16]>(), any::<[u8; 8]>(), prop::sample::select(vec!["00", "01"])).prop_map(|(t, s, f)| {
            let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
            format!("00-{}-{}-{f}", hex(&t), hex(&s)).into_bytes()
        }),
        // All-zero ids, a bad version, upper case, truncated: invalid.
        Just(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_vec()),
        Just(b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec()),
        Just(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01".to_vec()),
        Just(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7".to_vec()),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![8 => 0x21u8..0x7f, 1 => Just(b' '), 1 => 0x80u8..=0xff], 1..20).prop_map(
        |mut v| {
            while v.last() == Some(&b' ') {
                v.pop();
            }
            if v.is_empty() {
                v.push(b'v');
            }
            v
        },
    )
}

/// One field: those the raw form sorts out, those that send a request to the map, and others.
fn field() -> impl Strategy<Value = (String, Vec<u8>)> {
    prop_oneof![
        3 => (any_case("host"), prop_oneof![Just(b"svc.local:8080".to_vec()), Just(b"a b".to_vec()), value()]),
        2 => (any_case("user-agent"), value()),
        3 => (any_case("traceparent"), traceparent()),
        2 => (any_case("x-forwarded-for"), prop_oneof![Just(b"203.0.113.7".to_vec()), Just(Vec::new()), value()]),
        1 => (any_case("x-forwarded-proto"), Just(b"https".to_vec())),
        1 => (any_case("content-type"), prop_oneof![Just(b"application/grpc".to_vec()), Just(b"text/plain".to_vec())]),
        1 => (
            prop::sample::select(vec![
                "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
                "x-b3-flags", "uber-trace-id", "proxy-connection", "proxy-authorization", "proxy-authenticate",
            ])
            .prop_map(str::to_string),
            value(),
        ),
        4 => ("[a-zA-Z][a-zA-Z0-9!#$%&'*+.^_`|~-]{0,11}", value()),
        2 => (any_case("accept"), Just(b"*/*".to_vec())),
    ]
}

/// The upstream head `UpstreamPool::send` writes for raw fields.
fn upstream_head(fields: &RawForward<'_>, method: &Method, target: &str, framing: RequestFraming) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode_request_line(&mut out, method, target);
    fields.encode(&mut out);
    codec::encode_head_end(&mut out, framing);
    out
}

fn propagators() -> impl Strategy<Value = Vec<Propagator>> {
    prop::collection::vec(
        prop::sample::select(vec![Propagator::Tracecontext, Propagator::B3, Propagator::B3multi, Propagator::Jaeger]),
        0..3,
    )
}

/// A head's fields as one reads them: by lower-case name, the values in order.
fn by_name(wire: &[u8]) -> (String, String, BTreeMap<String, Vec<Vec<u8>>>) {
    let mut storage = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut storage);
    assert_eq!(req.parse(wire), Ok(httparse::Status::Complete(wire.len())), "{}", String::from_utf8_lossy(wire));
    let mut fields: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for h in req.headers.iter() {
        fields.entry(h.name.to_ascii_lowercase()).or_default().push(h.value.to_vec());
    }
    (req.method.unwrap_or_default().to_string(), req.path.unwrap_or_default().to_string(), fields)
}

proptest! {
    #![proptest_config(config(512))]

    /// Kept raw exactly when the module doc says; and then written upstream as the map writes it.
    #[test]
    fn raw_heads_go_upstream_as_the_map_sends_them(
        method in prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
        fields in prop::collection::vec(field(), 0..10),
        formats in propagators(),
        ratio in prop_oneof![Just(0.0), Just(1.0), 0.0f64..1.0],
    ) {
        let mut wire = format!("{method} /a/b?c=d HTTP/1.1\r\n").into_bytes();
        for (name, value) in &fields {
            wire.extend_from_slice(name.as_bytes());
            wire.extend_from_slice(b": ");
            wire.extend_from_slice(value);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        let taken = match parse_head(&mut BytesMut::from(&wire[..]), LIMIT) {
            Ok(taken) => taken,
            Err(e) => {
                prop_assert_eq!(e, NotTaken::Other);
                return Ok(());
            }
        };
        let count = |name: &str| fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count();
        let map_only = fields.iter().any(|(n, v)| {
            matches!(FieldKind::of(n.as_bytes()), FieldKind::MapOnly)
                || (n.eq_ignore_ascii_case("content-type") && crate::grpc::is_grpc_content_type(v))
        });
        let raw_expected =
            !map_only && count("host") == 1 && count("traceparent") <= 1 && count("x-forwarded-for") <= 1;
        prop_assert_eq!(taken.raw.is_some(), raw_expected, "{:?}", fields);
        let Some(raw) = taken.raw else {
            prop_assert_eq!(taken.request.headers().len(), fields.len());
            return Ok(());
        };
        prop_assert!(taken.request.headers().is_empty());

        // What the map path reads from the same fields.
        let mut map = raw.header_map().expect("every raw head makes a header map");
        prop_assert_eq!(map.len(), fields.len());
        let read = TraceContext::from_traceparent(raw.traceparent(), ratio);
        let from_map = TraceContext::from_headers(&map, ratio);
        prop_assert_eq!(read.parent_format, from_map.parent_format);
        prop_assert_eq!(read.parent_span_id, from_map.parent_span_id);
        if read.parent_span_id.is_some() {
            prop_assert_eq!(read.trace_id, from_map.trace_id);
            prop_assert_eq!(read.sampled, from_map.sampled);
        }
        prop_assert_eq!(raw.host(), map[header::HOST].as_bytes());
        prop_assert_eq!(raw.user_agent(), map.get(header::USER_AGENT).map(|v| v.as_bytes()));

        // Both ways of writing the upstream head, with the same context.
        let client = ClientInfo::new("10.1.2.3:5555".parse().expect("addr"));
        let upstream_host = HeaderValue::from_static("app:8080");
        let method = taken.request.method().clone();
        let framing = RequestFraming::with_length(&method, false, false);
        let host = Host::AsSent(map[header::HOST].clone());
        prepare_upstream_headers(&mut map, host, &client, &upstream_host);
        read.inject(&mut map, &formats);
        let mut from_map = Vec::new();
        codec::encode_request_head(&mut from_map, &method, "/a/b?c=d", &map, framing);
        let forward = RawForward { request: raw, client_ip: client.ip.as_bytes(), trace: read.outgoing(), formats: &formats };
        let from_raw = upstream_head(&forward, &method, "/a/b?c=d", framing);
        prop_assert_eq!(by_name(&from_raw), by_name(&from_map));
    }
}

#[test]
fn kinds_are_told_apart_in_any_case() {
    for (name, kind) in [
        ("HOST", FieldKind::Host),
        ("Host", FieldKind::Host),
        ("hosts", FieldKind::Other),
        ("User-Agent", FieldKind::UserAgent),
        ("TraceParent", FieldKind::Traceparent),
        ("X-Forwarded-For", FieldKind::ForwardedFor),
        ("x-forwarded-proto", FieldKind::ForwardedProto),
        ("Content-Type", FieldKind::ContentType),
        ("TE", FieldKind::Off),
        ("Keep-Alive", FieldKind::Off),
        ("Content-Length", FieldKind::Off),
        ("Transfer-Encoding", FieldKind::Off),
        ("Expect", FieldKind::Off),
        ("Upgrade", FieldKind::Off),
        ("Connection", FieldKind::Off),
        ("B3", FieldKind::MapOnly),
        ("X-B3-ParentSpanId", FieldKind::MapOnly),
        ("Uber-Trace-Id", FieldKind::MapOnly),
        ("Proxy-Authorization", FieldKind::MapOnly),
        ("tracestate", FieldKind::MapOnly),
        ("x-b3-flag", FieldKind::Other),
        ("accept", FieldKind::Other),
    ] {
        assert_eq!(FieldKind::of(name.as_bytes()), kind, "{name}");
    }
}

#[test]
fn a_plain_get_goes_upstream_with_the_forwarding_fields_after_its_own() {
    let wire = b"GET /x HTTP/1.1\r\nHost: svc:80\r\nX-Forwarded-For: 203.0.113.7\r\nAccept: */*\r\n\r\n";
    let taken = parse_head(&mut BytesMut::from(&wire[..]), LIMIT).expect("taken");
    let raw = taken.raw.expect("raw");
    let trace = TraceContext::from_traceparent(None, 1.0);
    let forward = RawForward { request: raw, client_ip: b"10.0.0.9", trace: trace.outgoing(), formats: &[] };
    let out = upstream_head(&forward, &Method::GET, "/x", RequestFraming::None);
    let expected = format!(
        "GET /x HTTP/1.1\r\nHost: svc:80\r\nAccept: */*\r\nx-forwarded-for: 203.0.113.7, 10.0.0.9\r\n\
         x-forwarded-proto: http\r\ntraceparent: 00-{}-{}-01\r\n\r\n",
        trace.trace_id_hex().as_str(),
        trace.span_id_hex().as_str()
    );
    assert_eq!(String::from_utf8_lossy(&out), expected);
}
