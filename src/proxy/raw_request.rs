//! A request head as the HTTP/1.1 fast path (`h1.rs`) read it, kept as the client's bytes, and
//! the upstream request head written from it without a header map: the client's fields go on as
//! it wrote them (names in its case), but for the ones the proxy rewrites, then the proxy's own:
//! `x-forwarded-for` (the client's list with the client's address appended), `x-forwarded-proto`
//! (unless the client sent one) and the trace fields (`traceparent`, and those of
//! `tracing.propagators`).
//!
//! Why by hand: the callgrind profile of the proxy benchmark (docs/benchmarks.md) put the
//! request's `HeaderMap` (every name hashed and inserted, looked up again for the fields the
//! proxy reads and rewrites, then encoded field by field) at about 3,000 instructions a request,
//! an eighth of redline's. Here a request's fields are sorted by one pass over their names and
//! copied once.
//!
//! Which requests: those whose rewriting is the plain case. Exactly one `Host`, at most one
//! `traceparent` and one `X-Forwarded-For`, and none of the other trace formats (`tracestate`,
//! `b3`, `X-B3-*`, `uber-trace-id`), the `Proxy-*` hop-by-hop fields or a gRPC content type. Any
//! other request gets a header map and the map's rules (`forward.rs`, `telemetry::propagation`),
//! and so does every request sent to an HTTP/2 upstream. A property test
//! (`raw_request_props.rs`) holds the two to the same upstream head.

use bytes::Bytes;
use http::Request;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::body::Incoming;

use super::upstream::codec;
use crate::telemetry::propagation::{self, Outgoing, Propagator};

/// A field's place in the head: name start and end, value start and end.
pub type FieldRange = (u32, u32, u32, u32);

/// What a request field's name means to the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Takes the request off the fast path, to hyper: framing (a body), `Expect`, and the
    /// connection-level fields (`Connection`, `Keep-Alive`, `TE`, `Upgrade`).
    Off,
    Host,
    UserAgent,
    Traceparent,
    ForwardedFor,
    ForwardedProto,
    ContentType,
    /// A field the header map's rules rewrite: other trace formats, `Proxy-*` hop-by-hop fields.
    MapOnly,
    Other,
}

impl FieldKind {
    /// Sorted by length first: most names (`accept`, `cookie`, custom ones) leave after one
    /// comparison, or none.
    pub fn of(name: &[u8]) -> FieldKind {
        let is = |lowercase: &[u8]| super::field_name::eq_lowercase(name, lowercase);
        match name.len() {
            2 if is(b"te") => FieldKind::Off,
            2 if is(b"b3") => FieldKind::MapOnly,
            4 if is(b"host") => FieldKind::Host,
            6 if is(b"expect") => FieldKind::Off,
            7 if is(b"upgrade") => FieldKind::Off,
            10 if is(b"user-agent") => FieldKind::UserAgent,
            10 if is(b"connection") || is(b"keep-alive") => FieldKind::Off,
            10 if is(b"tracestate") || is(b"x-b3-flags") => FieldKind::MapOnly,
            11 if is(b"traceparent") => FieldKind::Traceparent,
            11 if is(b"x-b3-spanid") => FieldKind::MapOnly,
            12 if is(b"content-type") => FieldKind::ContentType,
            12 if is(b"x-b3-traceid") || is(b"x-b3-sampled") => FieldKind::MapOnly,
            13 if is(b"uber-trace-id") => FieldKind::MapOnly,
            14 if is(b"content-length") => FieldKind::Off,
            15 if is(b"x-forwarded-for") => FieldKind::ForwardedFor,
            16 if is(b"proxy-connection") => FieldKind::MapOnly,
            17 if is(b"transfer-encoding") => FieldKind::Off,
            17 if is(b"x-forwarded-proto") => FieldKind::ForwardedProto,
            17 if is(b"x-b3-parentspanid") => FieldKind::MapOnly,
            18 if is(b"proxy-authenticate") => FieldKind::MapOnly,
            19 if is(b"proxy-authorization") => FieldKind::MapOnly,
            _ => FieldKind::Other,
        }
    }
}

/// Sorts a head's fields as they are read; `finish` says whether the raw form can carry them.
#[derive(Default)]
pub struct Sorter {
    host: Option<u8>,
    user_agent: Option<u8>,
    traceparent: Option<u8>,
    forwarded_for: Option<u8>,
    forwarded_proto: bool,
    map_only: bool,
}

/// The request is not the fast path's (`FieldKind::Off`).
#[derive(Debug)]
pub struct OffFastPath;

impl Sorter {
    /// Notes field `i` (below 256).
    pub fn note(&mut self, i: usize, name: &[u8], value: &[u8]) -> Result<(), OffFastPath> {
        let i = i as u8;
        // A second Host (an error), traceparent (no context: `extract`'s rule) or
        // X-Forwarded-For (the map appends to the first) is the map's to handle.
        let once = |slot: &mut Option<u8>, map_only: &mut bool| match slot {
            Some(_) => *map_only = true,
            None => *slot = Some(i),
        };
        match FieldKind::of(name) {
            FieldKind::Off => return Err(OffFastPath),
            FieldKind::Other => {}
            FieldKind::Host => once(&mut self.host, &mut self.map_only),
            // The first, as `HeaderMap::get` reads it.
            FieldKind::UserAgent => {
                self.user_agent.get_or_insert(i);
            }
            FieldKind::Traceparent => once(&mut self.traceparent, &mut self.map_only),
            FieldKind::ForwardedFor => once(&mut self.forwarded_for, &mut self.map_only),
            FieldKind::ForwardedProto => self.forwarded_proto = true,
            // A gRPC call (which has its own rules) is told by its content type.
            FieldKind::ContentType => self.map_only |= crate::grpc::is_grpc_content_type(value),
            FieldKind::MapOnly => self.map_only = true,
        }
        Ok(())
    }

    /// Whether the raw form can carry the head (`finish` gives it).
    pub fn raw(&self) -> bool {
        !self.map_only && self.host.is_some()
    }

    /// The raw form of the head, or None when it needs a header map.
    pub fn finish(self, head: Bytes, fields: Vec<FieldRange>) -> Option<RawRequest> {
        if !self.raw() {
            return None;
        }
        Some(RawRequest {
            head,
            fields,
            host: self.host?,
            user_agent: self.user_agent,
            traceparent: self.traceparent,
            forwarded_for: self.forwarded_for,
            forwarded_proto: self.forwarded_proto,
        })
    }
}

/// A request's fields as the client sent them (slices of its head), with the ones the proxy
/// reads or rewrites found.
#[derive(Debug)]
pub struct RawRequest {
    head: Bytes,
    fields: Vec<FieldRange>,
    host: u8,
    user_agent: Option<u8>,
    traceparent: Option<u8>,
    forwarded_for: Option<u8>,
    forwarded_proto: bool,
}

impl RawRequest {
    fn value(&self, i: u8) -> &[u8] {
        let (_, _, v0, v1) = self.fields[usize::from(i)];
        &self.head[v0 as usize..v1 as usize]
    }

    /// The one `Host` value.
    pub fn host(&self) -> &[u8] {
        self.value(self.host)
    }

    /// The `Host` value's bytes, sharing the head's.
    pub fn host_bytes(&self) -> Bytes {
        let (_, _, v0, v1) = self.fields[usize::from(self.host)];
        self.head.slice(v0 as usize..v1 as usize)
    }

    /// The `User-Agent` value's bytes, sharing the head's.
    pub fn user_agent_bytes(&self) -> Option<Bytes> {
        let (_, _, v0, v1) = self.fields[usize::from(self.user_agent?)];
        Some(self.head.slice(v0 as usize..v1 as usize))
    }

    pub fn user_agent(&self) -> Option<&[u8]> {
        self.user_agent.map(|i| self.value(i))
    }

    pub fn traceparent(&self) -> Option<&[u8]> {
        self.traceparent.map(|i| self.value(i))
    }

    /// The fields as a header map, as `header_map` builds one.
    pub fn header_map(&self) -> Option<HeaderMap> {
        header_map(&self.head, &self.fields, 0)
    }
}

/// A head's fields as a header map sharing its bytes, with room for `spare` more; None when a
/// name or value is one `http` refuses.
pub fn header_map(head: &Bytes, fields: &[FieldRange], spare: usize) -> Option<HeaderMap> {
    let mut headers = HeaderMap::with_capacity(fields.len() + spare);
    for &(n0, n1, v0, v1) in fields {
        let name = header_name(&head[n0 as usize..n1 as usize])?;
        let value = HeaderValue::from_maybe_shared(head.slice(v0 as usize..v1 as usize)).ok()?;
        headers.append(name, value);
    }
    Some(headers)
}

/// The names most requests carry, as clients write them, matched byte for byte before the
/// general parse (which lowercases the name into a scratch buffer and hashes it).
pub fn header_name(raw: &[u8]) -> Option<HeaderName> {
    let name = match raw {
        b"Host" | b"host" => header::HOST,
        b"User-Agent" | b"user-agent" => header::USER_AGENT,
        b"Accept" | b"accept" => header::ACCEPT,
        b"Accept-Encoding" | b"accept-encoding" => header::ACCEPT_ENCODING,
        b"Accept-Language" | b"accept-language" => header::ACCEPT_LANGUAGE,
        b"Authorization" | b"authorization" => header::AUTHORIZATION,
        b"Cache-Control" | b"cache-control" => header::CACHE_CONTROL,
        b"Content-Type" | b"content-type" => header::CONTENT_TYPE,
        b"Cookie" | b"cookie" => header::COOKIE,
        b"Origin" | b"origin" => header::ORIGIN,
        b"Referer" | b"referer" => header::REFERER,
        _ => return HeaderName::from_bytes(raw).ok(),
    };
    Some(name)
}

/// A request the fast path read: its fields in a header map, or raw (`raw` set, the map empty).
#[derive(Debug)]
pub struct FastRequest {
    pub request: Request<Option<Incoming>>,
    pub raw: Option<RawRequest>,
}

impl FastRequest {
    /// The request's fields whichever way they are kept (for tests and the fuzz targets).
    pub fn fields(&self) -> HeaderMap {
        match &self.raw {
            Some(raw) => raw.header_map().unwrap_or_default(),
            None => self.request.headers().clone(),
        }
    }
}

/// What the upstream is sent for a raw request besides the client's fields.
pub struct RawForward<'a> {
    pub request: RawRequest,
    /// Appended to `X-Forwarded-For`.
    pub client_ip: &'a [u8],
    pub trace: Outgoing,
    pub formats: &'a [Propagator],
}

impl codec::RequestFields for RawForward<'_> {
    /// The client's fields but those rewritten, then the proxy's. No field here frames a body:
    /// such a request is not the fast path's (`FieldKind::Off`).
    fn encode(&self, out: &mut Vec<u8>) {
        let r = &self.request;
        let passed_on = r.fields.iter().enumerate().filter_map(|(i, &(n0, n1, v0, v1))| {
            let i = Some(i as u8);
            (i != r.traceparent && i != r.forwarded_for).then_some([n0, n1, v0, v1])
        });
        codec::encode_fields_from(out, &r.head, passed_on);
        out.extend_from_slice(b"x-forwarded-for: ");
        if let Some(prior) = r.forwarded_for {
            out.extend_from_slice(r.value(prior));
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(self.client_ip);
        out.extend_from_slice(b"\r\n");
        if !r.forwarded_proto {
            out.extend_from_slice(b"x-forwarded-proto: http\r\n");
        }
        // The fields `write_fields` would remove are the map's (`FieldKind::MapOnly`): none here.
        propagation::write_fields(&self.trace, self.formats, |name, value| {
            if let Some(value) = value {
                codec::encode_field(out, name.as_str().as_bytes(), value);
            }
        });
    }
}

#[cfg(test)]
#[path = "raw_request_props.rs"]
mod props;
