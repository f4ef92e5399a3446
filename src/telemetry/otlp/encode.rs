//! `FinishedSpan`s straight to protobuf bytes: each span, when its request ends, as a
//! `ScopeSpans.spans` field (`put_framed_span`), and batches of those as an
//! `ExportTraceServiceRequest`, with the resource and scope encoded once.

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use super::FinishedSpan;
use crate::telemetry::out::{Out, in_room};
use crate::telemetry::red::MethodLabel;

// Field numbers, checked against the .proto files vendored in opentelemetry-proto 0.33.

// opentelemetry/proto/collector/trace/v1/trace_service.proto
/// ExportTraceServiceRequest.resource_spans = 1
const EXPORT_TRACE_SERVICE_REQUEST_RESOURCE_SPANS: u32 = 1;

// opentelemetry/proto/trace/v1/trace.proto
/// ResourceSpans.resource = 1
const RESOURCE_SPANS_RESOURCE: u32 = 1;
/// ResourceSpans.scope_spans = 2
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
/// ScopeSpans.scope = 1
const SCOPE_SPANS_SCOPE: u32 = 1;
/// ScopeSpans.spans = 2
const SCOPE_SPANS_SPANS: u32 = 2;
/// Span.trace_id = 1
const SPAN_TRACE_ID: u32 = 1;
/// Span.span_id = 2
const SPAN_SPAN_ID: u32 = 2;
/// Span.parent_span_id = 4
const SPAN_PARENT_SPAN_ID: u32 = 4;
/// Span.name = 5
const SPAN_NAME: u32 = 5;
/// Span.kind = 6
const SPAN_KIND: u32 = 6;
/// Span.start_time_unix_nano = 7 (fixed64)
const SPAN_START_TIME_UNIX_NANO: u32 = 7;
/// Span.end_time_unix_nano = 8 (fixed64)
const SPAN_END_TIME_UNIX_NANO: u32 = 8;
/// Span.attributes = 9
const SPAN_ATTRIBUTES: u32 = 9;
/// Span.status = 15
const SPAN_STATUS: u32 = 15;
/// Span.flags = 16 (fixed32)
const SPAN_FLAGS: u32 = 16;
/// Span.SpanKind.SPAN_KIND_SERVER = 2
const SPAN_KIND_SERVER: u64 = 2;
/// Status.message = 2
const STATUS_MESSAGE: u32 = 2;
/// Status.code = 3
const STATUS_CODE: u32 = 3;
/// Status.StatusCode.STATUS_CODE_ERROR = 2
const STATUS_CODE_ERROR: u64 = 2;
/// SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK = 0x100
const SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK: u32 = 0x100;
/// SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK = 0x200
const SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK: u32 = 0x200;
/// The W3C trace flags byte (SpanFlags.SPAN_FLAGS_TRACE_FLAGS_MASK = 0xFF) with `sampled` set:
/// only sampled spans are recorded.
const TRACE_FLAGS_SAMPLED: u32 = 0x01;

// opentelemetry/proto/resource/v1/resource.proto
/// Resource.attributes = 1
const RESOURCE_ATTRIBUTES: u32 = 1;

// opentelemetry/proto/common/v1/common.proto
/// InstrumentationScope.name = 1
const INSTRUMENTATION_SCOPE_NAME: u32 = 1;
/// InstrumentationScope.version = 2
const INSTRUMENTATION_SCOPE_VERSION: u32 = 2;
/// KeyValue.key = 1
const KEY_VALUE_KEY: u32 = 1;
/// KeyValue.value = 2
const KEY_VALUE_VALUE: u32 = 2;
/// AnyValue.string_value = 1
const ANY_VALUE_STRING_VALUE: u32 = 1;
/// AnyValue.int_value = 3 (int64: a varint of the two's complement)
const ANY_VALUE_INT_VALUE: u32 = 3;

/// A span attribute's key field, built at compile time: one copy per attribute where the key's
/// tag, length, bytes and the value's tag were four writes.
macro_rules! key {
    ($key:literal) => {{
        const FIELD: [u8; $key.len() + 3] = const_key_field($key);
        &FIELD
    }};
}

/// Builds the head of each `ExportTraceServiceRequest`: one ResourceSpans with the resource
/// attributes, one ScopeSpans for scope `redline`; the spans follow as the workers encoded them.
pub struct RequestEncoder {
    /// The `ResourceSpans.resource` field, encoded once: the resource never changes.
    resource: Vec<u8>,
    /// The `ScopeSpans.scope` field, encoded once.
    scope: Vec<u8>,
}

/// Room left for a span's length prefix before its body is written: two varint bytes hold
/// lengths from 128 to 16,383, where nearly every span falls. Other lengths move the body.
const SPAN_LEN_SLOT: usize = 2;

impl RequestEncoder {
    pub fn new(resource_attributes: &[(String, String)]) -> RequestEncoder {
        let mut attributes = Vec::new();
        for (key, value) in resource_attributes {
            put_key_value(&mut attributes, RESOURCE_ATTRIBUTES, &key_field(key), utf8(value));
        }
        let mut resource = Vec::new();
        put_len_delimited(&mut resource, RESOURCE_SPANS_RESOURCE, &attributes);

        let mut scope_body = Vec::new();
        put_len_delimited(&mut scope_body, INSTRUMENTATION_SCOPE_NAME, b"redline");
        put_len_delimited(&mut scope_body, INSTRUMENTATION_SCOPE_VERSION, env!("CARGO_PKG_VERSION").as_bytes());
        let mut scope = Vec::new();
        put_len_delimited(&mut scope, SCOPE_SPANS_SCOPE, &scope_body);

        RequestEncoder { resource, scope }
    }

    /// The bytes of a request before its spans, for spans of `spans_len` bytes, behind
    /// `prefix_len` zero bytes for the caller (gRPC's message prefix). The spans follow as
    /// they were encoded, without being copied (see `Exporter::body`).
    pub fn head(&self, spans_len: usize, prefix_len: usize) -> Vec<u8> {
        let scope_spans_len = self.scope.len() + spans_len;
        let resource_spans_len = self.resource.len() + len_delimited_len(RESOURCE_SPANS_SCOPE_SPANS, scope_spans_len);
        let mut head = Vec::with_capacity(prefix_len + 2 * (1 + 10) + self.resource.len() + self.scope.len());
        head.resize(prefix_len, 0);
        encode_key(EXPORT_TRACE_SERVICE_REQUEST_RESOURCE_SPANS, WireType::LengthDelimited, &mut head);
        encode_varint(resource_spans_len as u64, &mut head);
        head.extend_from_slice(&self.resource);
        encode_key(RESOURCE_SPANS_SCOPE_SPANS, WireType::LengthDelimited, &mut head);
        encode_varint(scope_spans_len as u64, &mut head);
        head.extend_from_slice(&self.scope);
        head
    }
}

/// A span as a `ScopeSpans.spans` field: key, length, then the body written straight behind
/// room for a two-byte length (the body moves only when its length needs another size).
pub fn put_framed_span(buf: &mut Vec<u8>, s: &FinishedSpan<'_>) {
    put_key(SCOPE_SPANS_SPANS, WireType::LengthDelimited, buf);
    let slot = buf.len();
    buf.extend_from_slice(&[0; SPAN_LEN_SLOT]);
    put_span(buf, s);
    let len = (buf.len() - slot - SPAN_LEN_SLOT) as u64;
    if encoded_len_varint(len) == SPAN_LEN_SLOT {
        // A `&mut [u8]` is a BufMut that writes in place: the slot gets the prefix.
        encode_varint(len, &mut &mut buf[slot..slot + SPAN_LEN_SLOT]);
    } else {
        let mut prefix = [0; 10];
        let prefix_len = encoded_len_varint(len);
        encode_varint(len, &mut &mut prefix[..]);
        buf.splice(slot..slot + SPAN_LEN_SLOT, prefix[..prefix_len].iter().copied());
    }
}

/// One span's message body, written into room for the most it can take (`out::in_room`).
fn put_span(buf: &mut Vec<u8>, s: &FinishedSpan<'_>) {
    in_room(buf, most_bytes(s), |c| write_span(c, s), |v| write_span(v, s));
}

/// The most bytes `write_span` writes for `s`, as far as the fixed fields and attribute keys
/// fit in 1 KiB (about 850 bytes with every attribute): text from the request takes at most
/// three bytes per byte (an invalid byte becomes U+FFFD), its length prefixes are counted in
/// the 1 KiB. A span past it is written again the slow way.
fn most_bytes(s: &FinishedSpan<'_>) -> usize {
    let text = s.route.len() * 2
        + s.method.as_str().len() * 2
        + s.path.map_or(1, str::len)
        + s.host.map_or(0, <[u8]>::len)
        + s.client_ip.len()
        + s.user_agent.map_or(0, <[u8]>::len)
        + s.error_type.map_or(0, str::len) * 2
        + s.rpc.and_then(|r| r.method).map_or(0, str::len) * 3;
    1024 + 3 * text
}

/// One span's message body, with what `to_span_data` and opentelemetry-otlp 0.33 produced
/// before this encoder replaced them, so collectors and dashboards see the same spans.
fn write_span(buf: &mut impl Out, s: &FinishedSpan<'_>) {
    put_id(buf, SPAN_TRACE_ID, &s.trace_id);
    put_id(buf, SPAN_SPAN_ID, &s.span_id);
    if let Some(parent) = &s.parent_span_id {
        put_id(buf, SPAN_PARENT_SPAN_ID, parent);
    }
    let method = s.method.as_str();
    let known_method = !matches!(MethodLabel::of(s.method), MethodLabel::Other);
    match &s.rpc {
        // A gRPC call is named `{rpc.method}` (RPC span conventions), or `grpc` without one.
        Some(rpc) => put_len_delimited(buf, SPAN_NAME, rpc.method.unwrap_or("grpc").as_bytes()),
        None => {
            // `{method} {route}`; an unknown method is a client's free text, so the name says `HTTP`.
            let name_prefix = if known_method { method } else { "HTTP" };
            put_key(SPAN_NAME, WireType::LengthDelimited, buf);
            put_varint((name_prefix.len() + 1 + s.route.len()) as u64, buf);
            buf.bytes(name_prefix.as_bytes());
            buf.byte(b' ');
            buf.bytes(s.route.as_bytes());
        }
    }
    put_key(SPAN_KIND, WireType::Varint, buf);
    put_varint(SPAN_KIND_SERVER, buf);
    put_fixed64(buf, SPAN_START_TIME_UNIX_NANO, s.start.0);
    put_fixed64(buf, SPAN_END_TIME_UNIX_NANO, s.start.after(s.duration).0);

    let mut attr = |key: &[u8], value: AnyValue| put_key_value(buf, SPAN_ATTRIBUTES, key, value);
    if known_method {
        attr(key!("http.request.method"), utf8(method));
    } else {
        attr(key!("http.request.method"), utf8("_OTHER"));
        attr(key!("http.request.method_original"), utf8(method));
    }
    attr(key!("http.route"), utf8(s.route));
    attr(key!("url.scheme"), utf8("http"));
    attr(key!("url.path"), utf8(s.path.unwrap_or("/")));
    // 0: no response was sent, and the conventions then leave the attribute out.
    if s.status != 0 {
        attr(key!("http.response.status_code"), AnyValue::Int(i64::from(s.status)));
    }
    let protocol_version = match s.version {
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_10 => "1.0",
        _ => "1.1",
    };
    attr(key!("network.protocol.version"), utf8(protocol_version));
    // A Host that is not visible ASCII is not trusted to name the server.
    if let Some(host) = s.host.filter(|h| visible_ascii(h)) {
        // `host:port` split at the last colon, byte-wise; a part after it that is not a port
        // (`u16` as `str::parse` reads it) leaves the Host whole as the address.
        let split = host.iter().rposition(|&b| b == b':').and_then(|i| Some((&host[..i], port(&host[i + 1..])?)));
        let (address, port) = match split {
            Some((address, port)) => (address, Some(port)),
            None => (host, None),
        };
        attr(key!("server.address"), AnyValue::String(Text::Utf8(address)));
        if let Some(port) = port {
            attr(key!("server.port"), AnyValue::Int(i64::from(port)));
        }
    }
    attr(key!("client.address"), AnyValue::String(Text::of(s.client_ip)));
    if let Some(ua) = s.user_agent {
        attr(key!("user_agent.original"), AnyValue::String(Text::of(ua)));
    }
    // Sizes above i64::MAX wrap as the `as i64` of the SDK path did; no body is that large.
    attr(key!("http.request.body.size"), AnyValue::Int(s.request_body_size as i64));
    attr(key!("http.response.body.size"), AnyValue::Int(s.response_body_size as i64));
    if let Some(rpc) = &s.rpc {
        // The stable RPC attributes (v1.45.0), then the older ones Jaeger queries and
        // dashboards built on earlier conventions still use (their `rpc/dup` migration).
        attr(key!("rpc.system.name"), utf8("grpc"));
        attr(key!("rpc.method"), utf8(rpc.method.unwrap_or("_OTHER")));
        attr(key!("rpc.response.status_code"), utf8(rpc.code.name()));
        attr(key!("rpc.system"), utf8("grpc"));
        if let Some((service, _)) = rpc.method.and_then(|m| m.split_once('/')) {
            attr(key!("rpc.service"), utf8(service));
        }
        attr(key!("rpc.grpc.status_code"), AnyValue::Int(rpc.code as i64));
    }
    if let Some(error) = s.error_type {
        attr(key!("error.type"), utf8(error));
    }

    // A SERVER span is in error only for the service's failures, not for what the client did.
    put_status(buf, s.error_type.filter(|_| s.service_error));
    let mut flags = TRACE_FLAGS_SAMPLED | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK;
    // The parent, when there is one, is always the caller's: it came in a request header.
    if s.parent_span_id.is_some() {
        flags |= SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK;
    }
    put_key(SPAN_FLAGS, WireType::ThirtyTwoBit, buf);
    buf.bytes(&flags.to_le_bytes());
}

/// Whether a header value is visible ASCII (or tab), what `HeaderValue::to_str` accepts.
fn visible_ascii(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| (b' '..0x7f).contains(&b) || b == b'\t')
}

/// A port number as `str::parse::<u16>` reads one: an optional `+`, then decimal digits.
fn port(digits: &[u8]) -> Option<u16> {
    let digits = digits.strip_prefix(b"+").unwrap_or(digits);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u16, |n, &d| {
        if d.is_ascii_digit() { n.checked_mul(10)?.checked_add(u16::from(d - b'0')) } else { None }
    })
}

/// `Span.status`: ERROR with the error type as message on failure, else UNSET. An UNSET status
/// is still sent as an empty message, as opentelemetry-otlp did, so decoders see a status.
fn put_status(buf: &mut impl Out, error: Option<&str>) {
    put_key(SPAN_STATUS, WireType::LengthDelimited, buf);
    match error {
        Some(error) => {
            let len = len_delimited_len(STATUS_MESSAGE, error.len())
                + key_len(STATUS_CODE)
                + encoded_len_varint(STATUS_CODE_ERROR);
            put_varint(len as u64, buf);
            put_len_delimited(buf, STATUS_MESSAGE, error.as_bytes());
            put_key(STATUS_CODE, WireType::Varint, buf);
            put_varint(STATUS_CODE_ERROR, buf);
        }
        None => put_varint(0, buf),
    }
}

/// A string's bytes: valid UTF-8 as they are, anything else as `String::from_utf8_lossy`
/// renders it (one U+FFFD per invalid sequence), written without building that string.
#[derive(Clone, Copy)]
enum Text<'a> {
    Utf8(&'a [u8]),
    Lossy(&'a [u8]),
}

const REPLACEMENT: &str = "\u{FFFD}";

impl<'a> Text<'a> {
    /// Header values may hold any byte; protobuf strings must be UTF-8.
    fn of(bytes: &'a [u8]) -> Text<'a> {
        // is_ascii, word at a time, settles the usual header value for a fraction of from_utf8.
        if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() { Text::Utf8(bytes) } else { Text::Lossy(bytes) }
    }

    fn len(self) -> usize {
        match self {
            Text::Utf8(b) => b.len(),
            Text::Lossy(b) => b
                .utf8_chunks()
                .map(|c| c.valid().len() + if c.invalid().is_empty() { 0 } else { REPLACEMENT.len() })
                .sum(),
        }
    }

    fn put(self, buf: &mut impl Out) {
        match self {
            Text::Utf8(b) => buf.bytes(b),
            Text::Lossy(b) => {
                for chunk in b.utf8_chunks() {
                    buf.bytes(chunk.valid().as_bytes());
                    if !chunk.invalid().is_empty() {
                        buf.bytes(REPLACEMENT.as_bytes());
                    }
                }
            }
        }
    }
}

/// A string value known to be UTF-8.
fn utf8(s: &str) -> AnyValue<'_> {
    AnyValue::String(Text::Utf8(s.as_bytes()))
}

/// The attribute value types redline sends.
#[derive(Clone, Copy)]
enum AnyValue<'a> {
    String(Text<'a>),
    Int(i64),
}

/// A `KeyValue` as field `tag` of its parent, its lengths worked out arithmetically so that
/// nothing is written twice. `key_field` is the key's front ([`key!`] for redline's own keys,
/// [`key_field`] for the resource's). Inlined so that each constant key's lengths are folded.
#[inline(always)]
fn put_key_value(buf: &mut impl Out, tag: u32, key_field: &[u8], value: AnyValue) {
    // A oneof member is written even when it holds the default (an empty string), as prost does.
    let (value_len, text_len) = match value {
        AnyValue::String(t) => {
            let text_len = t.len();
            (len_delimited_len(ANY_VALUE_STRING_VALUE, text_len), text_len)
        }
        AnyValue::Int(v) => (key_len(ANY_VALUE_INT_VALUE) + encoded_len_varint(v as u64), 0),
    };
    let key_value_len = key_field.len() + encoded_len_varint(value_len as u64) + value_len;
    put_key(tag, WireType::LengthDelimited, buf);
    put_varint(key_value_len as u64, buf);
    buf.bytes(key_field);
    put_varint(value_len as u64, buf);
    match value {
        AnyValue::String(t) => {
            put_key(ANY_VALUE_STRING_VALUE, WireType::LengthDelimited, buf);
            put_varint(text_len as u64, buf);
            t.put(buf);
        }
        AnyValue::Int(v) => {
            put_key(ANY_VALUE_INT_VALUE, WireType::Varint, buf);
            put_varint(v as u64, buf);
        }
    }
}

/// The front of a `KeyValue` up to its value's length: `KeyValue.key` (key, length, the key's
/// bytes) and the key of `KeyValue.value`.
fn key_field(key: &str) -> Vec<u8> {
    let mut field = Vec::with_capacity(key.len() + 12);
    put_len_delimited(&mut field, KEY_VALUE_KEY, key.as_bytes());
    put_key(KEY_VALUE_VALUE, WireType::LengthDelimited, &mut field);
    field
}

/// [`key_field`] at compile time, for a key shorter than 128 bytes (one-byte length); `N` is
/// its length plus 3.
const fn const_key_field<const N: usize>(key: &str) -> [u8; N] {
    let key = key.as_bytes();
    assert!(key.len() < 128 && key.len() + 3 == N);
    let mut field = [0u8; N];
    field[0] = ((KEY_VALUE_KEY << 3) | WireType::LengthDelimited as u32) as u8;
    field[1] = key.len() as u8;
    let mut i = 0;
    while i < key.len() {
        field[2 + i] = key[i];
        i += 1;
    }
    field[N - 1] = ((KEY_VALUE_VALUE << 3) | WireType::LengthDelimited as u32) as u8;
    field
}

/// The encoded length of a length-delimited field (string, bytes or message) of `len` bytes,
/// key and length prefix included.
fn len_delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A string (known to be UTF-8), bytes or message field.
fn put_len_delimited(buf: &mut impl Out, tag: u32, body: &[u8]) {
    put_key(tag, WireType::LengthDelimited, buf);
    put_varint(body.len() as u64, buf);
    buf.bytes(body);
}

/// A `bytes` field of fixed size (trace and span ids): a copy of constant length, inlined.
#[inline(always)]
fn put_id<const N: usize>(buf: &mut impl Out, tag: u32, id: &[u8; N]) {
    put_key(tag, WireType::LengthDelimited, buf);
    put_varint(N as u64, buf);
    buf.bytes(id);
}

fn put_fixed64(buf: &mut impl Out, tag: u32, v: u64) {
    put_key(tag, WireType::SixtyFourBit, buf);
    buf.bytes(&v.to_le_bytes());
}

/// prost's `encode_key` for a span's fields: every key but `Span.flags` is one byte, and with
/// the tag a constant this folds to one push.
#[inline(always)]
fn put_key(tag: u32, wire_type: WireType, buf: &mut impl Out) {
    put_varint(u64::from((tag << 3) | wire_type as u32), buf);
}

/// prost's `encode_varint` with a one-byte fast path: nearly every length here is below 128,
/// and prost's loop, not inlined, cost a third of the encoding.
#[inline(always)]
fn put_varint(v: u64, buf: &mut impl Out) {
    if v < 0x80 { buf.byte(v as u8) } else { put_long_varint(v, buf) }
}

fn put_long_varint(mut v: u64, buf: &mut impl Out) {
    while v >= 0x80 {
        buf.byte(v as u8 | 0x80);
        v >>= 7;
    }
    buf.byte(v as u8);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use prost::Message;

    use super::*;
    use crate::telemetry::otlp::EncodedSpans;

    const START_SECS: u64 = 1_700_000_000;

    fn span(status: u16, error_type: Option<&'static str>) -> FinishedSpan<'static> {
        FinishedSpan {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: Some([3; 8]),
            method: &http::Method::GET,
            route: "/users/{id}",
            // What the proxy passes: the path without the query.
            path: Some("/users/7"),
            version: http::Version::HTTP_11,
            host: Some(b"shop.local:8443"),
            status,
            error_type,
            service_error: error_type.is_some(),
            start: crate::telemetry::wall_clock::UnixNanos(START_SECS * 1_000_000_000),
            duration: Duration::from_millis(12),
            client_ip: b"10.0.0.9",
            user_agent: Some(b"curl/8"),
            request_body_size: 0,
            response_body_size: 42,
            rpc: None,
        }
    }

    fn resource() -> Vec<(String, String)> {
        [("service.name", "checkout"), ("service.version", "2.3.1"), ("team", "")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .to_vec()
    }

    /// Encodes `batch` (in chunks of three, as workers hand spans over in chunks) and decodes it
    /// with the official protobuf definitions.
    fn round_trip(encoder: &mut RequestEncoder, batch: &[FinishedSpan]) -> ExportTraceServiceRequest {
        let chunks: Vec<EncodedSpans> = batch
            .chunks(3)
            .map(|spans| {
                let mut chunk = EncodedSpans::default();
                spans.iter().for_each(|s| chunk.push(s));
                chunk
            })
            .collect();
        let mut request = encoder.head(chunks.iter().map(EncodedSpans::bytes).sum(), 0);
        for chunk in chunks {
            request.extend_from_slice(&chunk.into_bytes());
        }
        ExportTraceServiceRequest::decode(&request[..]).expect("a valid ExportTraceServiceRequest")
    }

    /// The spans of a request that must hold one resource and one scope, both checked.
    fn spans_of(req: ExportTraceServiceRequest) -> Vec<Span> {
        assert_eq!(req.resource_spans.len(), 1);
        let rs = req.resource_spans.into_iter().next().expect("one ResourceSpans");
        let resource = rs.resource.expect("a resource");
        let expected: Vec<KeyValue> = resource_kvs();
        assert_eq!(resource.attributes, expected);
        assert_eq!(resource.dropped_attributes_count, 0);
        assert_eq!(rs.schema_url, "");
        assert_eq!(rs.scope_spans.len(), 1);
        let ss = rs.scope_spans.into_iter().next().expect("one ScopeSpans");
        let scope = ss.scope.expect("a scope");
        assert_eq!(scope.name, "redline");
        assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
        assert!(scope.attributes.is_empty());
        assert_eq!(ss.schema_url, "");
        ss.spans
    }

    fn resource_kvs() -> Vec<KeyValue> {
        resource().into_iter().map(|(k, v)| kv(&k, Value::StringValue(v))).collect()
    }

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(opentelemetry_proto::tonic::common::v1::AnyValue { value: Some(value) }),
            key_strindex: 0,
        }
    }

    fn s(v: &str) -> Value {
        Value::StringValue(v.to_string())
    }

    fn one(s: FinishedSpan) -> Span {
        let spans = spans_of(round_trip(&mut RequestEncoder::new(&resource()), &[s]));
        assert_eq!(spans.len(), 1);
        spans.into_iter().next().expect("one span")
    }

    fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
        span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
    }

    #[test]
    fn server_span_has_every_field_and_attribute_of_the_sdk_path() {
        let d = one(span(200, None));
        let start = START_SECS * 1_000_000_000;
        let expected = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            trace_state: String::new(),
            parent_span_id: vec![3; 8],
            // sampled | context has is_remote | context is remote, as opentelemetry-otlp set it
            flags: 0x301,
            name: "GET /users/{id}".into(),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 12_000_000,
            attributes: vec![
                kv("http.request.method", s("GET")),
                kv("http.route", s("/users/{id}")),
                kv("url.scheme", s("http")),
                kv("url.path", s("/users/7")),
                kv("http.response.status_code", Value::IntValue(200)),
                kv("network.protocol.version", s("1.1")),
                kv("server.address", s("shop.local")),
                kv("server.port", Value::IntValue(8443)),
                kv("client.address", s("10.0.0.9")),
                kv("user_agent.original", s("curl/8")),
                kv("http.request.body.size", Value::IntValue(0)),
                kv("http.response.body.size", Value::IntValue(42)),
            ],
            dropped_attributes_count: 0,
            events: vec![],
            dropped_events_count: 0,
            links: vec![],
            dropped_links_count: 0,
            status: Some(Status { message: String::new(), code: 0 }),
        };
        assert_eq!(d, expected);
    }

    #[test]
    fn failures_set_error_status_and_error_type() {
        let d = one(span(504, Some("timeout")));
        assert_eq!(d.status, Some(Status { message: "timeout".into(), code: 2 }));
        assert_eq!(attr(&d, "error.type"), Some(&s("timeout")));
        assert_eq!(d.attributes.last().map(|kv| kv.key.as_str()), Some("error.type"));
        assert_eq!(attr(&d, "http.response.status_code"), Some(&Value::IntValue(504)));
    }

    #[test]
    fn a_grpc_call_follows_the_rpc_span_conventions() {
        let mut sp = span(200, Some("UNAVAILABLE"));
        sp.method = &http::Method::POST;
        sp.rpc = Some(crate::telemetry::otlp::SpanRpc {
            method: Some("shop.Cart/Add"),
            code: crate::grpc::Code::Unavailable,
        });
        let d = one(sp);
        assert_eq!(d.name, "shop.Cart/Add");
        assert_eq!(attr(&d, "rpc.system.name"), Some(&s("grpc")));
        assert_eq!(attr(&d, "rpc.method"), Some(&s("shop.Cart/Add")));
        assert_eq!(attr(&d, "rpc.response.status_code"), Some(&s("UNAVAILABLE")));
        assert_eq!(attr(&d, "rpc.system"), Some(&s("grpc")));
        assert_eq!(attr(&d, "rpc.service"), Some(&s("shop.Cart")));
        assert_eq!(attr(&d, "rpc.grpc.status_code"), Some(&Value::IntValue(14)));
        assert_eq!(d.status, Some(Status { message: "UNAVAILABLE".into(), code: 2 }));
        let mut sp = span(200, None);
        sp.rpc = Some(crate::telemetry::otlp::SpanRpc { method: None, code: crate::grpc::Code::NotFound });
        let d = one(sp);
        assert_eq!(d.name, "grpc");
        assert_eq!(attr(&d, "rpc.method"), Some(&s("_OTHER")));
        assert!(attr(&d, "rpc.service").is_none());
        assert_eq!(d.status, Some(Status { message: String::new(), code: 0 }), "NOT_FOUND is not the server's error");
    }

    #[test]
    fn unknown_methods_are_other_with_the_original_kept() {
        let mut sp = span(200, None);
        let purge = http::Method::from_bytes(b"PURGE").expect("a method token");
        sp.method = &purge;
        let d = one(sp);
        assert_eq!(d.name, "HTTP /users/{id}");
        assert_eq!(attr(&d, "http.request.method"), Some(&s("_OTHER")));
        assert_eq!(attr(&d, "http.request.method_original"), Some(&s("PURGE")));
        assert_eq!(d.attributes[1].key, "http.request.method_original");
    }

    #[test]
    fn host_without_port_ipv6_host_and_no_host() {
        let mut sp = span(200, None);
        sp.host = Some(b"shop.local");
        let d = one(sp);
        assert_eq!(attr(&d, "server.address"), Some(&s("shop.local")));
        assert!(attr(&d, "server.port").is_none());

        let mut sp = span(200, None);
        sp.host = Some(b"[::1]:8080");
        let d = one(sp);
        assert_eq!(attr(&d, "server.address"), Some(&s("[::1]")));
        assert_eq!(attr(&d, "server.port"), Some(&Value::IntValue(8080)));

        let mut sp = span(200, None);
        sp.host = Some(b"shop.local:http");
        assert_eq!(attr(&one(sp), "server.address"), Some(&s("shop.local:http")), "not a port: kept whole");

        let mut sp = span(200, None);
        sp.host = None;
        let d = one(sp);
        assert!(attr(&d, "server.address").is_none());
        assert!(attr(&d, "server.port").is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any span, including hostile bytes in every field from the request, is encoded the
        /// same through the room made for it as straight into a `Vec`, and decodes.
        #[test]
        fn spans_written_in_place_equal_spans_pushed(
            route in ".{0,40}",
            path in proptest::option::of(".{0,200}"),
            host in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..60)),
            client_ip in proptest::collection::vec(proptest::num::u8::ANY, 0..50),
            user_agent in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..400)),
            error_type in proptest::option::of("[a-z_0-9]{0,30}"),
            rpc in proptest::option::of(proptest::option::of("[a-zA-Z./]{0,60}")),
            method in "[A-Z]{1,12}",
            status in proptest::num::u16::ANY,
            sizes in (proptest::num::u64::ANY, proptest::num::u64::ANY),
            parent in proptest::option::of(proptest::array::uniform8(proptest::num::u8::ANY)),
        ) {
            let method = http::Method::from_bytes(method.as_bytes()).expect("a token");
            let span = FinishedSpan {
                trace_id: [7; 16],
                span_id: [8; 8],
                parent_span_id: parent,
                method: &method,
                route: &route,
                path: path.as_deref(),
                version: http::Version::HTTP_11,
                host: host.as_deref(),
                status,
                error_type: error_type.as_deref(),
                service_error: status >= 500,
                start: crate::telemetry::wall_clock::UnixNanos(START_SECS * 1_000_000_000),
                duration: Duration::from_micros(u64::from(status)),
                client_ip: &client_ip,
                user_agent: user_agent.as_deref(),
                request_body_size: sizes.0,
                response_body_size: sizes.1,
                rpc: rpc.as_ref().map(|m| crate::telemetry::otlp::SpanRpc { method: m.as_deref(), code: crate::grpc::Code::Internal }),
            };
            let mut in_place = vec![1, 2, 3];
            put_span(&mut in_place, &span);
            let mut pushed = vec![1, 2, 3];
            write_span(&mut pushed, &span);
            proptest::prop_assert_eq!(&in_place, &pushed);
            proptest::prop_assert!(in_place.len() - 3 <= most_bytes(&span), "the room was enough");
            proptest::prop_assert!(Span::decode(&in_place[3..]).is_ok());
        }
    }

    #[test]
    fn compile_time_key_fields_equal_the_runtime_ones() {
        assert_eq!(&key!("http.route")[..], &key_field("http.route")[..]);
        assert_eq!(&key!("http.request.method_original")[..], &key_field("http.request.method_original")[..]);
        assert_eq!(&key!("x")[..], &key_field("x")[..]);
        assert_eq!(key_field(&"k".repeat(200))[..3], [0x0a, 0xc8, 0x01], "a long key's length takes two bytes");
    }

    #[test]
    fn ports_are_read_as_str_parse_reads_a_u16() {
        for text in ["80", "+80", "0", "65535", "65536", "", "+", "8a", "-1", "０", "99999999999", "00080"] {
            assert_eq!(port(text.as_bytes()), text.parse::<u16>().ok(), "{text:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any bytes after a Host's last colon are a port exactly when `str::parse` reads one.
        #[test]
        fn any_port_bytes_read_as_str_parse_reads_them(
            bytes in proptest::collection::vec(proptest::sample::select(b"+-0123456789a \xff".to_vec()), 0..8),
        ) {
            let parsed = std::str::from_utf8(&bytes).ok().and_then(|s| s.parse::<u16>().ok());
            proptest::prop_assert_eq!(port(&bytes), parsed);
        }
    }

    #[test]
    fn root_span_has_no_parent_and_no_remote_flag() {
        let mut sp = span(200, None);
        sp.parent_span_id = None;
        let d = one(sp);
        assert!(d.parent_span_id.is_empty());
        assert_eq!(d.flags, 0x101, "sampled | context has is_remote");
    }

    #[test]
    fn non_utf8_header_bytes_become_replacement_characters() {
        let raw = b"agent/\xff1 \xc3(\xe2\x82 ok \xf0\x9f\x98\x80\x80";
        let mut sp = span(200, None);
        sp.user_agent = Some(raw);
        sp.client_ip = b"10.0.0.\xfe";
        sp.host = Some(b"sh\xf6p:80");
        sp.path = None;
        let d = one(sp);
        let lossy = String::from_utf8_lossy(raw).into_owned();
        assert!(lossy.contains('\u{FFFD}'));
        assert_eq!(attr(&d, "user_agent.original"), Some(&Value::StringValue(lossy)));
        assert_eq!(attr(&d, "client.address"), Some(&s("10.0.0.\u{FFFD}")));
        assert!(attr(&d, "server.address").is_none(), "a Host that is not visible ASCII is left out");
        assert_eq!(attr(&d, "url.path"), Some(&s("/")));
    }

    #[test]
    fn other_protocol_versions_and_large_values() {
        let mut sp = span(200, None);
        sp.version = http::Version::HTTP_2;
        sp.response_body_size = 1 << 40;
        let long = "/".repeat(300);
        sp.route = &long;
        let d = one(sp);
        assert_eq!(attr(&d, "network.protocol.version"), Some(&s("2")));
        assert_eq!(attr(&d, "http.response.body.size"), Some(&Value::IntValue(1 << 40)));
        assert_eq!(d.name.len(), "GET ".len() + 300, "a name past 127 bytes has a two-byte length");
        let mut sp = span(200, None);
        sp.version = http::Version::HTTP_10;
        assert_eq!(attr(&one(sp), "network.protocol.version"), Some(&s("1.0")));
    }

    #[test]
    fn a_batch_keeps_every_span_in_order_and_buffers_are_reused() {
        let mut encoder = RequestEncoder::new(&resource());
        let batch: Vec<FinishedSpan> = (0..40u8)
            .map(|i| {
                let mut sp = span(if i % 3 == 0 { 500 } else { 200 }, (i % 3 == 0).then_some("500"));
                sp.span_id = [i; 8];
                sp.trace_id[0] = i;
                sp.parent_span_id = (i % 2 == 0).then_some([i; 8]);
                sp
            })
            .collect();
        let spans = spans_of(round_trip(&mut encoder, &batch));
        assert_eq!(spans.len(), 40);
        for (i, d) in spans.iter().enumerate() {
            let expected = &batch[i];
            assert_eq!(d.span_id, expected.span_id);
            assert_eq!(d.trace_id, expected.trace_id);
            assert_eq!(d.parent_span_id, expected.parent_span_id.map_or(vec![], |p| p.to_vec()));
            assert_eq!(d.status.as_ref().map(|s| s.code), Some(if i % 3 == 0 { 2 } else { 0 }));
        }
        // A span past 16 KiB needs a three-byte length: its body moves, the next span follows.
        let mut big = span(200, None);
        let agent = "x".repeat(20_000);
        big.user_agent = Some(agent.as_bytes());
        let spans = spans_of(round_trip(&mut encoder, &[span(200, None), big, span(404, None)]));
        assert_eq!(spans.len(), 3);
        assert_eq!(
            attr(&spans[1], "user_agent.original").map(|v| matches!(v, Value::StringValue(s) if s.len() == 20_000)),
            Some(true)
        );
        assert_eq!(attr(&spans[2], "http.response.status_code"), Some(&Value::IntValue(404)));
        // A smaller batch through the same encoder carries nothing of the previous one.
        let spans = spans_of(round_trip(&mut encoder, &batch[5..7]));
        assert_eq!(spans.iter().map(|d| d.span_id[0]).collect::<Vec<_>>(), vec![5, 6]);
    }
}
