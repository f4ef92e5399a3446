//! Trace context on the wire: which incoming headers continue a trace, and which trace headers
//! the upstream receives. The W3C Trace Context (level 1) processing model and the rule that
//! the upstream never sees two different parent contexts both live here.
//!
//! Extraction (`extract`), first valid format wins, in this order:
//! 1. W3C `traceparent`;
//! 2. B3 single `b3`;
//! 3. B3 multi `X-B3-TraceId` + `X-B3-SpanId` (+ `X-B3-Sampled`, `X-B3-Flags`);
//! 4. Jaeger `uber-trace-id`.
//!
//! A malformed or repeated header makes its format absent (never an error), and the next format
//! is tried; with none valid the request starts a new trace. The order on the wire does not
//! matter. Formats are read whatever `tracing.propagators` says: that setting only chooses what
//! is written upstream.
//!
//! Injection (`inject`) replaces every incoming trace header:
//! - `traceparent` is always written, once: version 00, the request's trace, the sidecar's span
//!   as parent-id, the sampling decision as the only flag.
//! - `tracestate` is forwarded only when the context was continued from a valid `traceparent`
//!   (W3C: without a valid traceparent the tracestate is discarded and the trace restarts, even
//!   when a B3 or Jaeger context is continued instead), and only when it is itself valid
//!   (`tracestate_members`); an invalid one is discarded whole, which the spec allows and its
//!   test suite expects. Repeated `tracestate` fields are combined into one, in order; a lone
//!   valid field is forwarded byte for byte; an empty one is not sent.
//! - `b3`, `X-B3-*` and `uber-trace-id` are rewritten to the sidecar's span when their format is
//!   in `tracing.propagators`, and removed otherwise, whichever format the context came from.
//!   So every propagation header the upstream sees names the same trace and the sidecar's
//!   span. `X-B3-ParentSpanId` is the caller's span (the parent of the sidecar's) or absent;
//!   `X-B3-Flags` is always removed (a caller's debug flag would contradict `X-B3-Sampled`).
//!
//! Headers of formats the sidecar does not read (baggage, vendor formats such as Datadog's) are
//! left alone.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// A trace header format the sidecar writes upstream (`tracing.propagators`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Propagator {
    Tracecontext,
    B3,
    B3multi,
    Jaeger,
}

// Statics rather than `&str` keys so that each lookup hashes a prebuilt name instead of
// re-validating the string, and so that inserting clones a static (allocation-free) name.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
static B3: HeaderName = HeaderName::from_static("b3");
static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
static UBER_TRACE_ID: HeaderName = HeaderName::from_static("uber-trace-id");

/// Every header `inject` may remove besides the `traceparent` it always replaces.
static REPLACED: [&HeaderName; 8] =
    [&TRACESTATE, &B3, &B3_TRACE_ID, &B3_SPAN_ID, &B3_PARENT_SPAN_ID, &B3_SAMPLED, &B3_FLAGS, &UBER_TRACE_ID];

/// The most `key=value` members a valid `tracestate` holds (W3C Trace Context, "list").
pub const TRACESTATE_MAX_MEMBERS: usize = 32;

/// The wire format an incoming context was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tracecontext,
    B3Single,
    B3Multi,
    Jaeger,
}

/// A trace context found on an incoming request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extracted {
    pub trace_id: [u8; 16],
    /// The caller's span id (becomes the sidecar span's parent).
    pub parent_span_id: [u8; 8],
    /// The caller's sampling decision; None when the format defers it (B3 without a sampled flag).
    pub sampled: Option<bool>,
    pub format: Format,
}

/// The first valid context in the module's order, or None.
///
/// A header that appears more than once makes its format invalid: the W3C test suite
/// (`test_traceparent_duplicated`) requires that for `traceparent`, and picking one of two
/// contradicting copies of any other format would be just as arbitrary.
pub fn extract(headers: &HeaderMap) -> Option<Extracted> {
    // Most requests carry no context at all: one pass over the names (custom names compare by
    // length first) is cheaper than a hashed lookup per format.
    let formats = [&TRACEPARENT, &B3, &B3_TRACE_ID, &UBER_TRACE_ID];
    if !headers.keys().any(|name| formats.contains(&name)) {
        return None;
    }
    value(headers, &TRACEPARENT)
        .and_then(parse_traceparent)
        .or_else(|| value(headers, &B3).and_then(parse_b3_single))
        .or_else(|| parse_b3_multi(headers))
        .or_else(|| value(headers, &UBER_TRACE_ID).and_then(parse_jaeger))
}

/// The context a lone `traceparent` value carries, or None when it is malformed: what
/// `extract` finds in a request with no other trace field.
pub fn extract_traceparent(value: &[u8]) -> Option<Extracted> {
    parse_traceparent(trim_ows(value))
}

/// The context the sidecar sends upstream: same trace, the sidecar's span as parent.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub sampled: bool,
    /// Where the caller's context came from; None for a new trace. Only a context continued
    /// from `traceparent` keeps the incoming `tracestate`.
    pub continued_from: Option<Format>,
}

/// Rewrites the request's trace headers for the upstream, as the module doc lays out: one
/// context, the sidecar's span, in `traceparent` plus each format in `formats`
/// (`Tracecontext` there adds nothing: `traceparent` is always written).
pub fn inject(headers: &mut HeaderMap, ctx: &Outgoing, formats: &[Propagator]) {
    // Nothing to remove on most requests: one pass over the names instead of a hashed lookup
    // per header that might need removing.
    if headers.keys().any(|name| REPLACED.contains(&name)) {
        if ctx.continued_from == Some(Format::Tracecontext) {
            forward_tracestate(headers);
        } else {
            headers.remove(&TRACESTATE);
        }
        for (format, names) in [
            (Propagator::B3, &[&B3][..]),
            (Propagator::B3multi, &[&B3_TRACE_ID, &B3_SPAN_ID, &B3_PARENT_SPAN_ID, &B3_SAMPLED, &B3_FLAGS][..]),
            (Propagator::Jaeger, &[&UBER_TRACE_ID][..]),
        ] {
            // Written formats are replaced below; the others must not reach the upstream, where
            // they would name the caller's span (or another trace) next to ours.
            if !formats.contains(&format) {
                for name in names {
                    headers.remove(*name);
                }
            }
        }
    }

    write_fields(ctx, formats, |name, value| match value {
        Some(value) => set(headers, name, value),
        None => {
            headers.remove(name);
        }
    });
}

/// The trace fields `inject` writes, in order, each given to `put` as a name and a value;
/// `None` asks for the name to be removed (a field that would contradict the ones written).
/// The HTTP/1.1 fast path writes them straight into the upstream request head
/// (`proxy::raw_request`), where the fields to remove never got in.
pub fn write_fields(ctx: &Outgoing, formats: &[Propagator], mut put: impl FnMut(&'static HeaderName, Option<&[u8]>)) {
    let mut trace = [0u8; 32];
    hex_into(&ctx.trace_id, &mut trace);
    let mut span = [0u8; 16];
    hex_into(&ctx.span_id, &mut span);
    let flag = if ctx.sampled { b'1' } else { b'0' };

    let mut tp = [0u8; 55];
    tp[..3].copy_from_slice(b"00-");
    tp[3..35].copy_from_slice(&trace);
    tp[35] = b'-';
    tp[36..52].copy_from_slice(&span);
    tp[52..].copy_from_slice(&[b'-', b'0', flag]);
    put(&TRACEPARENT, Some(&tp));

    for (i, format) in formats.iter().enumerate() {
        // A format listed twice is written once.
        if formats[..i].contains(format) {
            continue;
        }
        match format {
            Propagator::Tracecontext => {}
            Propagator::B3 => {
                let mut b3 = [0u8; 51];
                b3[..32].copy_from_slice(&trace);
                b3[32] = b'-';
                b3[33..49].copy_from_slice(&span);
                b3[49..].copy_from_slice(&[b'-', flag]);
                put(&B3, Some(&b3));
            }
            Propagator::B3multi => {
                put(&B3_TRACE_ID, Some(&trace));
                put(&B3_SPAN_ID, Some(&span));
                put(&B3_SAMPLED, Some(&[flag]));
                // A caller's debug flag would override our explicit X-B3-Sampled upstream.
                put(&B3_FLAGS, None);
                match &ctx.parent_span_id {
                    Some(parent) => {
                        let mut p = [0u8; 16];
                        hex_into(parent, &mut p);
                        put(&B3_PARENT_SPAN_ID, Some(&p));
                    }
                    // The caller's parent is not ours: leaving it would point at the wrong span.
                    None => put(&B3_PARENT_SPAN_ID, None),
                }
            }
            Propagator::Jaeger => {
                // The parent field is deprecated; `0` is what Jaeger clients send.
                let mut j = [0u8; 54];
                j[..32].copy_from_slice(&trace);
                j[32] = b':';
                j[33..49].copy_from_slice(&span);
                j[49..].copy_from_slice(&[b':', b'0', b':', b'0', flag]);
                put(&UBER_TRACE_ID, Some(&j));
            }
        }
    }
}

/// Leaves the request's `tracestate` as one valid, non-empty field, or removes it.
fn forward_tracestate(headers: &mut HeaderMap) {
    let mut fields = headers.get_all(&TRACESTATE).iter();
    let Some(first) = fields.next() else {
        return;
    };
    if fields.next().is_none() {
        // The common case: forwarded byte for byte, without allocating.
        if !matches!(tracestate_members(first.as_bytes()), Some(1..)) {
            headers.remove(&TRACESTATE);
        }
        return;
    }
    // Several fields are one list (RFC 9110 section 5.3: joined by commas, in order); the W3C
    // spec asks for them to be sent on as a single field. Empty fields add nothing.
    let mut combined = Vec::new();
    for field in headers.get_all(&TRACESTATE) {
        let field = trim_ows(field.as_bytes());
        if field.is_empty() {
            continue;
        }
        if !combined.is_empty() {
            combined.push(b',');
        }
        combined.extend_from_slice(field);
    }
    let valid = matches!(tracestate_members(&combined), Some(1..));
    match HeaderValue::from_bytes(&combined) {
        Ok(v) if valid => {
            headers.insert(TRACESTATE.clone(), v);
        }
        _ => {
            headers.remove(&TRACESTATE);
        }
    }
}

/// The number of `key=value` members in a valid W3C Trace Context (level 1) `tracestate`
/// value, or None when it is invalid: a member that is not `key=value`, a bad key or value, a
/// key given twice, or more than `TRACESTATE_MAX_MEMBERS` members.
///
/// Empty and whitespace-only members are allowed and not counted (they appear when fields are
/// combined). Keys are `simple-key` (a lower-case letter, then up to 255 of `a-z0-9_-*/`) or
/// `tenant@system` (tenant: a letter or digit, then up to 240 more; system: a letter, then up
/// to 13 more). Values are 1 to 256 printable ASCII characters except `,` and `=`, not ending
/// in a space.
pub fn tracestate_members(v: &[u8]) -> Option<usize> {
    let mut keys: [&[u8]; TRACESTATE_MAX_MEMBERS] = [&[]; TRACESTATE_MAX_MEMBERS];
    let mut count = 0;
    for member in v.split(|&c| c == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        let eq = member.iter().position(|&c| c == b'=')?;
        let (key, value) = (&member[..eq], &member[eq + 1..]);
        if !tracestate_key(key) || !tracestate_value(value) {
            return None;
        }
        // Only one entry per key: which of two was meant cannot be told.
        if count == TRACESTATE_MAX_MEMBERS || keys[..count].contains(&key) {
            return None;
        }
        keys[count] = key;
        count += 1;
    }
    Some(count)
}

fn tracestate_key(key: &[u8]) -> bool {
    let rest = |s: &[u8], max: usize| {
        s.len() <= max && s.iter().all(|&c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/'))
    };
    match key.iter().position(|&c| c == b'@') {
        None => matches!(key, [b'a'..=b'z', tail @ ..] if rest(tail, 255)),
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            matches!(tenant, [b'a'..=b'z' | b'0'..=b'9', tail @ ..] if rest(tail, 240))
                && matches!(system, [b'a'..=b'z', tail @ ..] if rest(tail, 13))
        }
    }
}

fn tracestate_value(value: &[u8]) -> bool {
    (1..=256).contains(&value.len())
        && value.iter().all(|&c| matches!(c, b' '..=b'~') && c != b',' && c != b'=')
        && value.last() != Some(&b' ')
}

/// Replaces every incoming value of `name`; `HeaderMap::insert` already drops duplicates.
fn set(headers: &mut HeaderMap, name: &HeaderName, value: &[u8]) {
    match HeaderValue::from_bytes(value) {
        Ok(v) => {
            headers.insert(name.clone(), v);
        }
        // Unreachable (only hex digits and separators are written), but if it ever happened
        // a stale incoming value must not be forwarded as if it were ours.
        Err(_) => {
            headers.remove(name);
        }
    }
}

/// The header's only value with optional whitespace trimmed; `Err` when it is repeated.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a [u8]>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    Ok(Some(trim_ows(first.as_bytes())))
}

/// The header's only value, if it has exactly one.
fn value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a [u8]> {
    single(headers, name).ok().flatten()
}

/// HTTP parsers strip OWS, but a `HeaderMap` built by other code may not have (and the W3C
/// test suite's `test_traceparent_ows_handling` expects it to be tolerated).
fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// `{version}-{trace-id}-{parent-id}-{flags}`, all fixed-width lower-case hex.
fn parse_traceparent(v: &[u8]) -> Option<Extracted> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let [version] = hex_exact::<1>(&v[0..2], Case::Lower)?;
    // Version 00 is exactly 55 bytes; later versions may append fields after a dash, and
    // their first 55 bytes must still be read as version 00.
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id = hex_exact::<16>(&v[3..35], Case::Lower)?;
    let parent_span_id = hex_exact::<8>(&v[36..52], Case::Lower)?;
    let [flags] = hex_exact::<1>(&v[53..55], Case::Lower)?;
    valid(Format::Tracecontext, trace_id, parent_span_id, Some(flags & 1 == 1))
}

/// `{trace-id}-{span-id}[-{sampling-state}[-{parent-span-id}]]`.
fn parse_b3_single(v: &[u8]) -> Option<Extracted> {
    let mut parts = v.split(|&c| c == b'-');
    // A lone sampling state (`0`, `1`, `d`) fails here: it carries no ids to continue.
    let trace_id = b3_trace_id(parts.next()?)?;
    let span_id = hex_exact::<8>(parts.next()?, Case::Lower)?;
    let sampled = match parts.next() {
        None => None,
        // Debug implies an accept decision in B3.
        Some(b"1" | b"d") => Some(true),
        Some(b"0") => Some(false),
        Some(_) => return None,
    };
    // The parent is not used, but a garbled one means a garbled header (the Zipkin
    // reference propagator rejects it too).
    if let Some(parent) = parts.next() {
        hex_exact::<8>(parent, Case::Lower)?;
    }
    if parts.next().is_some() {
        return None;
    }
    valid(Format::B3Single, trace_id, span_id, sampled)
}

fn parse_b3_multi(headers: &HeaderMap) -> Option<Extracted> {
    let trace_id = b3_trace_id(value(headers, &B3_TRACE_ID)?)?;
    let span_id = hex_exact::<8>(value(headers, &B3_SPAN_ID)?, Case::Lower)?;
    // `X-B3-Flags: 1` is debug, which implies sampled whatever X-B3-Sampled says. Any other
    // flags value is undefined and ignored, as the Zipkin reference propagator does.
    let sampled = if value(headers, &B3_FLAGS) == Some(b"1") {
        Some(true)
    } else {
        match single(headers, &B3_SAMPLED) {
            Ok(None) => None,
            // `true`/`false` predate the spec's `1`/`0` and are still sent by old clients.
            Ok(Some(b"1" | b"true")) => Some(true),
            Ok(Some(b"0" | b"false")) => Some(false),
            _ => return None,
        }
    };
    valid(Format::B3Multi, trace_id, span_id, sampled)
}

/// B3 trace ids are 64 or 128 bits; a 64-bit one is the low half of the 128-bit id.
fn b3_trace_id(s: &[u8]) -> Option<[u8; 16]> {
    match s.len() {
        16 | 32 => hex_right_aligned::<16>(s, Case::Lower),
        _ => None,
    }
}

/// `{trace-id}:{span-id}:{parent-span-id}:{flags}`, ids unpadded base16, possibly with the
/// colons URL-encoded (some HTTP clients encode the value as a URL component).
fn parse_jaeger(v: &[u8]) -> Option<Extracted> {
    let (trace, rest) = split_jaeger(v)?;
    let (span, rest) = split_jaeger(rest)?;
    // The parent field is deprecated and most Jaeger clients ignore it on receipt; only its
    // presence is part of the format.
    let (_parent, flags) = split_jaeger(rest)?;
    if split_jaeger(flags).is_some() {
        return None;
    }
    // The Jaeger spec says base16 without fixing a case, and Jaeger clients parse with
    // case-insensitive hex, so upper case is accepted here (unlike W3C and B3).
    let trace_id = hex_right_aligned::<16>(trace, Case::Any)?;
    let span_id = hex_right_aligned::<8>(span, Case::Any)?;
    let [flags] = hex_right_aligned::<1>(flags, Case::Any)?;
    // Bit 0x2 is debug, which forces sampling.
    valid(Format::Jaeger, trace_id, span_id, Some(flags & 0b11 != 0))
}

/// Splits at the first `:` or URL-encoded `%3A` (either hex case, per RFC 3986).
fn split_jaeger(v: &[u8]) -> Option<(&[u8], &[u8])> {
    for (i, &c) in v.iter().enumerate() {
        if c == b':' {
            return Some((&v[..i], &v[i + 1..]));
        }
        if c == b'%' && matches!(v.get(i + 1..i + 3), Some(b"3A" | b"3a")) {
            return Some((&v[..i], &v[i + 3..]));
        }
    }
    None
}

/// All-zero ids mean "no id" in every format.
fn valid(format: Format, trace_id: [u8; 16], parent_span_id: [u8; 8], sampled: Option<bool>) -> Option<Extracted> {
    if trace_id == [0; 16] || parent_span_id == [0; 8] {
        return None;
    }
    Some(Extracted { trace_id, parent_span_id, sampled, format })
}

#[derive(Clone, Copy)]
enum Case {
    Lower,
    Any,
}

fn nibble(c: u8, case: Case) -> Option<u8> {
    match (c, case) {
        (b'0'..=b'9', _) => Some(c - b'0'),
        (b'a'..=b'f', _) => Some(c - b'a' + 10),
        (b'A'..=b'F', Case::Any) => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Exactly `2 * N` hex digits.
fn hex_exact<const N: usize>(s: &[u8], case: Case) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    hex_right_aligned(s, case)
}

/// 1 to `2 * N` hex digits, left-padded with zeros.
fn hex_right_aligned<const N: usize>(s: &[u8], case: Case) -> Option<[u8; N]> {
    if s.is_empty() || s.len() > 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, &c) in s.iter().rev().enumerate() {
        let v = nibble(c, case)?;
        out[N - 1 - i / 2] |= if i % 2 == 0 { v } else { v << 4 };
    }
    Some(out)
}

/// Every byte's two lower-case hex digits, so that an id is rendered a pair per byte.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [DIGITS[b >> 4], DIGITS[b & 0xf]];
        b += 1;
    }
    pairs
};

/// Writes `bytes` in lower-case hex into `out` (two digits per byte, as far as `out` goes): the
/// ids of the access line, `traceparent` and the B3 and Jaeger fields.
pub fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::Context;
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use std::collections::HashMap;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";
    const TRACE64: &str = "a3ce929d0e0e4736";
    const TRACE64_PADDED: &str = "0000000000000000a3ce929d0e0e4736";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("test header name"),
                HeaderValue::from_str(v).expect("test header value"),
            );
        }
        map
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// (trace id hex, span id hex, sampled) as extracted by us.
    fn ours(pairs: &[(&str, &str)]) -> Option<(String, String, Option<bool>)> {
        extract(&headers(pairs)).map(|e| (hex(&e.trace_id), hex(&e.parent_span_id), e.sampled))
    }

    fn ctx(trace: &str, span: &str, sampled: Option<bool>) -> Option<(String, String, Option<bool>)> {
        Some((trace.to_string(), span.to_string(), sampled))
    }

    fn header_str<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
        map.get(name).map(|v| v.to_str().expect("ascii header"))
    }

    /// A valid header set for each format that a malformed earlier format must fall through
    /// to, with the context it carries (deliberately a different trace from `TRACE`).
    const FALLBACK_TRACE: &str = "11111111111111112222222222222222";
    const FALLBACK_SPAN: &str = "3333333333333333";

    fn fallback_after(header: &str) -> Vec<(&'static str, &'static str)> {
        match header.to_ascii_lowercase().as_str() {
            "traceparent" => vec![("b3", "11111111111111112222222222222222-3333333333333333-1")],
            "b3" => vec![("x-b3-traceid", FALLBACK_TRACE), ("x-b3-spanid", FALLBACK_SPAN), ("x-b3-sampled", "1")],
            "x-b3-traceid" => vec![("uber-trace-id", "11111111111111112222222222222222:3333333333333333:0:1")],
            _ => vec![],
        }
    }

    /// The set yields nothing on its own, and does not shadow the next format in order.
    fn assert_skipped(bad: &[(&str, &str)]) {
        assert_eq!(ours(bad), None, "should be rejected: {bad:?}");
        let fallback = fallback_after(bad[0].0);
        if fallback.is_empty() {
            return;
        }
        let mut combined = bad.to_vec();
        combined.extend(fallback);
        assert_eq!(
            ours(&combined),
            ctx(FALLBACK_TRACE, FALLBACK_SPAN, Some(true)),
            "a later valid format must win over {bad:?}"
        );
    }

    #[test]
    fn hex_is_two_lower_case_digits_per_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = vec![0u8; 512];
        hex_into(&bytes, &mut out);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(String::from_utf8(out).ok(), Some(expected));
        let mut short = [b'_'; 5];
        hex_into(&[0xab, 0xcd, 0xef], &mut short);
        assert_eq!(&short, b"abcd_", "as far as `out` goes");
    }

    #[test]
    fn no_trace_headers_is_none() {
        assert_eq!(extract(&HeaderMap::new()), None);
        assert_eq!(ours(&[("host", "example.com"), ("tracestate", "a=b")]), None);
    }

    #[test]
    fn traceparent_valid() {
        let cases = [
            (format!("00-{TRACE}-{SPAN}-01"), Some(true)),
            (format!("00-{TRACE}-{SPAN}-00"), Some(false)),
            // Unknown flag bits are ignored; only bit 0 is "sampled".
            (format!("00-{TRACE}-{SPAN}-03"), Some(true)),
            (format!("00-{TRACE}-{SPAN}-02"), Some(false)),
            (format!("00-{TRACE}-{SPAN}-ff"), Some(true)),
            // Future versions: the first 55 bytes are read as version 00.
            (format!("01-{TRACE}-{SPAN}-01"), Some(true)),
            (format!("cc-{TRACE}-{SPAN}-01-what-the-future-will-be-like"), Some(true)),
            (format!("fe-{TRACE}-{SPAN}-00-"), Some(false)),
            // Optional whitespace around the value.
            (format!(" \t00-{TRACE}-{SPAN}-01\t "), Some(true)),
        ];
        for (value, sampled) in cases {
            assert_eq!(ours(&[("traceparent", &value)]), ctx(TRACE, SPAN, sampled), "{value}");
        }
    }

    #[test]
    fn traceparent_malformed() {
        let cases = [
            String::new(),
            "00".to_string(),
            format!("00-{TRACE}-{SPAN}"),
            format!("00-{TRACE}-{SPAN}-"),
            format!("00-{TRACE}-{SPAN}-1"),
            format!("00-{TRACE}-{SPAN}-001"),
            // Version 00 must be exactly 55 bytes.
            format!("00-{TRACE}-{SPAN}-01-"),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("00-{TRACE}-{SPAN}-01."),
            // Future versions must continue with a dash after the flags.
            format!("01-{TRACE}-{SPAN}-01.extra"),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("0-{TRACE}-{SPAN}-01"),
            format!("000-{TRACE}-{SPAN}-01"),
            format!("0g-{TRACE}-{SPAN}-01"),
            format!("00-{}-{SPAN}-01", &TRACE[..30]),
            format!("00-{TRACE}ab-{SPAN}-01"),
            format!("00-{TRACE}-{}-01", &SPAN[..14]),
            format!("00-{TRACE}-{SPAN}ab-01"),
            format!("00-{TRACE64}-{SPAN}-01"),
            format!("00-4bf92f3577b34da6a3ce929d0e0e473g-{SPAN}-01"),
            format!("00-{TRACE}-00f067aa0ba902bz-01"),
            format!("00-{TRACE}-{SPAN}-0z"),
            format!("00-{TRACE}-{SPAN}-.0"),
            format!("00-+bf92f3577b34da6a3ce929d0e0e473-{SPAN}-01"),
            // Upper-case hex anywhere.
            format!("0A-{TRACE}-{SPAN}-01"),
            format!("00-4BF92F3577B34DA6A3CE929D0E0E4736-{SPAN}-01"),
            format!("00-{TRACE}-00F067AA0BA902B7-01"),
            format!("00-{TRACE}-{SPAN}-0A"),
            // All-zero ids.
            format!("00-00000000000000000000000000000000-{SPAN}-01"),
            format!("00-{TRACE}-0000000000000000-01"),
            // Wrong separators.
            format!("00_{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}_{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}_01"),
        ];
        for value in &cases {
            assert_skipped(&[("traceparent", value)]);
        }
    }

    #[test]
    fn traceparent_repeated_is_invalid() {
        // W3C test suite, test_traceparent_duplicated.
        let a = "00-12345678901234567890123456789011-1234567890123456-01";
        let b = "00-12345678901234567890123456789012-1234567890123456-01";
        assert_skipped(&[("traceparent", a), ("traceparent", b)]);
        assert_skipped(&[("traceparent", a), ("traceparent", a)]);
    }

    #[test]
    fn b3_single_valid() {
        let cases = [
            (format!("{TRACE}-{SPAN}"), TRACE, None),
            (format!("{TRACE}-{SPAN}-1"), TRACE, Some(true)),
            (format!("{TRACE}-{SPAN}-0"), TRACE, Some(false)),
            (format!("{TRACE}-{SPAN}-d"), TRACE, Some(true)),
            (format!("{TRACE}-{SPAN}-1-00000000000000cd"), TRACE, Some(true)),
            // A root span's parent may be written as zeros; it is ignored either way.
            (format!("{TRACE}-{SPAN}-0-0000000000000000"), TRACE, Some(false)),
            (format!("{TRACE64}-{SPAN}-1"), TRACE64_PADDED, Some(true)),
            (format!("{TRACE64}-{SPAN}"), TRACE64_PADDED, None),
            (format!("{TRACE64}-{SPAN}-d-00000000000000cd"), TRACE64_PADDED, Some(true)),
        ];
        for (value, trace, sampled) in cases {
            assert_eq!(ours(&[("b3", &value)]), ctx(trace, SPAN, sampled), "{value}");
        }
    }

    #[test]
    fn b3_single_malformed() {
        let cases = [
            // Sampling state alone: no ids to continue.
            "0".to_string(),
            "1".to_string(),
            "d".to_string(),
            String::new(),
            "-".to_string(),
            TRACE.to_string(),
            format!("{TRACE}-"),
            format!("{TRACE}-{SPAN}-"),
            format!("{TRACE}-{SPAN}-1-"),
            format!("{TRACE}-{SPAN}-1-00000000000000cd-x"),
            // Wrong lengths.
            format!("{}-{SPAN}-1", &TRACE[..15]),
            format!("{}-{SPAN}-1", &TRACE[..17]),
            format!("{}-{SPAN}-1", &TRACE[..31]),
            format!("{TRACE}a-{SPAN}-1"),
            format!("{TRACE}-{}-1", &SPAN[..15]),
            format!("{TRACE}-{SPAN}a-1"),
            format!("{TRACE}-{SPAN}-1-00cd"),
            // Non-hex, signs and upper case.
            format!("4bf92f3577b34da6a3ce929d0e0e473x-{SPAN}-1"),
            format!("+bf92f3577b34da6-{SPAN}-1"),
            format!("{TRACE}-00f067aa0ba902bx-1"),
            format!("4BF92F3577B34DA6A3CE929D0E0E4736-{SPAN}-1"),
            format!("{TRACE}-00F067AA0BA902B7-1"),
            format!("{TRACE}-{SPAN}-1-00000000000000CD"),
            // Sampling states outside the spec.
            format!("{TRACE}-{SPAN}-2"),
            format!("{TRACE}-{SPAN}-true"),
            format!("{TRACE}-{SPAN}-D"),
            format!("{TRACE}-{SPAN}-01"),
            // All-zero ids.
            format!("00000000000000000000000000000000-{SPAN}-1"),
            format!("0000000000000000-{SPAN}-1"),
            format!("{TRACE}-0000000000000000-1"),
        ];
        for value in &cases {
            assert_skipped(&[("b3", value)]);
        }
    }

    #[test]
    fn b3_multi_valid() {
        let ids = |trace: &'static str, extra: &[(&'static str, &'static str)]| {
            let mut set = vec![("X-B3-TraceId", trace), ("X-B3-SpanId", SPAN)];
            set.extend_from_slice(extra);
            set
        };
        let cases = [
            (ids(TRACE, &[("X-B3-Sampled", "1")]), TRACE, Some(true)),
            (ids(TRACE, &[("X-B3-Sampled", "0")]), TRACE, Some(false)),
            (ids(TRACE, &[("X-B3-Sampled", "true")]), TRACE, Some(true)),
            (ids(TRACE, &[("X-B3-Sampled", "false")]), TRACE, Some(false)),
            (ids(TRACE, &[]), TRACE, None),
            (ids(TRACE64, &[("X-B3-Sampled", "1")]), TRACE64_PADDED, Some(true)),
            (ids(TRACE64, &[]), TRACE64_PADDED, None),
            // Debug implies sampled, whatever X-B3-Sampled says.
            (ids(TRACE, &[("X-B3-Flags", "1")]), TRACE, Some(true)),
            (ids(TRACE, &[("X-B3-Flags", "1"), ("X-B3-Sampled", "0")]), TRACE, Some(true)),
            // Undefined flags values are ignored.
            (ids(TRACE, &[("X-B3-Flags", "0"), ("X-B3-Sampled", "1")]), TRACE, Some(true)),
            (ids(TRACE, &[("X-B3-Flags", "2")]), TRACE, None),
            // The parent is not used.
            (ids(TRACE, &[("X-B3-ParentSpanId", "garbage")]), TRACE, None),
            // Header names are case-insensitive.
            (vec![("x-b3-traceid", TRACE), ("X-B3-SPANID", SPAN), ("x-B3-sampled", "1")], TRACE, Some(true)),
        ];
        for (set, trace, sampled) in cases {
            assert_eq!(ours(&set), ctx(trace, SPAN, sampled), "{set:?}");
        }
    }

    #[test]
    fn b3_multi_malformed() {
        let short_trace = &TRACE[..31];
        let long_span = format!("{SPAN}0");
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![("X-B3-TraceId", TRACE)],
            vec![("X-B3-TraceId", TRACE), ("X-B3-Sampled", "1")],
            vec![("X-B3-TraceId", TRACE), ("X-B3-SpanId", "")],
            vec![("X-B3-TraceId", ""), ("X-B3-SpanId", SPAN)],
            vec![("X-B3-TraceId", short_trace), ("X-B3-SpanId", SPAN)],
            vec![("X-B3-TraceId", &TRACE[..15]), ("X-B3-SpanId", SPAN)],
            vec![("X-B3-TraceId", TRACE), ("X-B3-SpanId", &long_span)],
            vec![("X-B3-TraceId", TRACE), ("X-B3-SpanId", &SPAN[..15])],
            vec![("X-B3-TraceId", "4BF92F3577B34DA6A3CE929D0E0E4736"), ("X-B3-SpanId", SPAN)],
            vec![("X-B3-TraceId", TRACE), ("X-B3-SpanId", "00F067AA0BA902B7")],
            vec![("X-B3-TraceId", "4bf92f3577b34da6a3ce929d0e0e473g"), ("X-B3-SpanId", SPAN)],
            vec![("X-B3-TraceId", "00000000000000000000000000000000"), ("X-B3-SpanId", SPAN)],
            vec![("X-B3-TraceId", TRACE), ("X-B3-SpanId", "0000000000000000")],
            vec![("X-B3-TraceId", TRACE), ("X-B3-SpanId", SPAN), ("X-B3-Sampled", "yes")],
            vec![("X-B3-TraceId", TRACE), ("X-B3-SpanId", SPAN), ("X-B3-Sampled", "d")],
            vec![("X-B3-TraceId", TRACE), ("X-B3-SpanId", SPAN), ("X-B3-Sampled", "True")],
            vec![("X-B3-TraceId", TRACE), ("X-B3-SpanId", SPAN), ("X-B3-Sampled", "")],
            vec![("X-B3-TraceId", TRACE), ("X-B3-TraceId", FALLBACK_TRACE), ("X-B3-SpanId", SPAN)],
        ];
        for set in &cases {
            assert_skipped(set);
        }
    }

    #[test]
    fn jaeger_valid() {
        // Unpadded ids from the Jaeger client test suites, and their padded forms.
        let short = ("4d0000000000000016", "17c29");
        let padded = ("000000000000004d0000000000000016", "0000000000017c29");
        let cases = [
            (format!("{TRACE}:{SPAN}:0:1"), (TRACE, SPAN), Some(true)),
            (format!("{TRACE}:{SPAN}:0:0"), (TRACE, SPAN), Some(false)),
            (format!("{TRACE}:{SPAN}:0:01"), (TRACE, SPAN), Some(true)),
            (format!("{TRACE}:{SPAN}:0:00"), (TRACE, SPAN), Some(false)),
            // Debug (0x2) forces sampling, with or without the sampled bit.
            (format!("{TRACE}:{SPAN}:0:3"), (TRACE, SPAN), Some(true)),
            (format!("{TRACE}:{SPAN}:0:2"), (TRACE, SPAN), Some(true)),
            // Firehose (0x8) alone is not a decision to record.
            (format!("{TRACE}:{SPAN}:0:8"), (TRACE, SPAN), Some(false)),
            (format!("{TRACE}:{SPAN}:0:0f"), (TRACE, SPAN), Some(true)),
            (format!("{TRACE}:{SPAN}:00000000000000cd:1"), (TRACE, SPAN), Some(true)),
            (format!("{TRACE64}:{SPAN}:0:1"), (TRACE64_PADDED, SPAN), Some(true)),
            (format!("{}:{}:0:1", short.0, short.1), padded, Some(true)),
            // URL-encoded colons, either hex case.
            (format!("{TRACE}%3A{SPAN}%3A0%3A1"), (TRACE, SPAN), Some(true)),
            (format!("{TRACE}%3a{SPAN}%3a0%3a0"), (TRACE, SPAN), Some(false)),
            (format!("{}%3A{}%3A0%3A1", short.0, short.1), padded, Some(true)),
            // Case-insensitive hex, as Jaeger clients accept it.
            ("4BF92F3577B34DA6A3CE929D0E0E4736:00F067AA0BA902B7:0:1".to_string(), (TRACE, SPAN), Some(true)),
        ];
        for (value, (trace, span), sampled) in cases {
            assert_eq!(ours(&[("uber-trace-id", &value)]), ctx(trace, span, sampled), "{value}");
        }
    }

    #[test]
    fn jaeger_malformed() {
        let cases = [
            String::new(),
            TRACE.to_string(),
            format!("{TRACE}:{SPAN}"),
            format!("{TRACE}:{SPAN}:0"),
            format!("{TRACE}:{SPAN}:0:1:"),
            format!("{TRACE}:{SPAN}:0:1:extra"),
            format!("{TRACE}:{SPAN}:0:"),
            format!(":{SPAN}:0:1"),
            format!("{TRACE}::0:1"),
            // Too long.
            format!("0{TRACE}:{SPAN}:0:1"),
            format!("{TRACE}:0{SPAN}:0:1"),
            format!("{TRACE}:{SPAN}:0:001"),
            // Non-hex.
            format!("4bf92f3577b34da6a3ce929d0e0e473g:{SPAN}:0:1"),
            format!("{TRACE}:00f067aa0ba902bg:0:1"),
            format!("{TRACE}:{SPAN}:0:g"),
            format!("+{SPAN}:{SPAN}:0:1"),
            format!("{TRACE}%3B{SPAN}%3B0%3B1"),
            format!("{TRACE}%3{SPAN}%3A0%3A1"),
            // All-zero ids.
            format!("0:{SPAN}:0:1"),
            format!("00000000000000000000000000000000:{SPAN}:0:1"),
            format!("{TRACE}:0:0:1"),
        ];
        for value in &cases {
            assert_skipped(&[("uber-trace-id", value)]);
        }
    }

    #[test]
    fn order_of_formats() {
        let tp = ("traceparent", "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-aaaaaaaaaaaaaaaa-00");
        let b3 = ("b3", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bbbbbbbbbbbbbbbb-1");
        let m1 = ("x-b3-traceid", "cccccccccccccccccccccccccccccccc");
        let m2 = ("x-b3-spanid", "cccccccccccccccc");
        let j = ("uber-trace-id", "dddddddddddddddddddddddddddddddd:dddddddddddddddd:0:1");
        let a = ctx("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa", Some(false));
        let b = ctx("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "bbbbbbbbbbbbbbbb", Some(true));
        let c = ctx("cccccccccccccccccccccccccccccccc", "cccccccccccccccc", None);
        let d = ctx("dddddddddddddddddddddddddddddddd", "dddddddddddddddd", Some(true));
        // Header order on the wire is irrelevant; only the format order counts.
        assert_eq!(ours(&[j, m1, m2, b3, tp]), a);
        assert_eq!(ours(&[j, m1, m2, b3]), b);
        assert_eq!(ours(&[j, m1, m2]), c);
        assert_eq!(ours(&[j]), d);
    }

    #[test]
    fn extract_names_the_format() {
        let tp = format!("00-{TRACE}-{SPAN}-01");
        let b3 = format!("{TRACE}-{SPAN}-1");
        let jaeger = format!("{TRACE}:{SPAN}:0:1");
        let cases: [(Vec<(&str, &str)>, Format); 4] = [
            (vec![("traceparent", &tp), ("b3", &b3)], Format::Tracecontext),
            (vec![("traceparent", "garbage"), ("b3", &b3)], Format::B3Single),
            (vec![("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN), ("uber-trace-id", &jaeger)], Format::B3Multi),
            (vec![("b3", "0"), ("uber-trace-id", &jaeger)], Format::Jaeger),
        ];
        for (set, format) in cases {
            assert_eq!(extract(&headers(&set)).map(|e| e.format), Some(format), "{set:?}");
        }
    }

    /// The `tracestate` fields the upstream gets for these incoming ones.
    fn tracestate_after(from: Option<Format>, fields: &[&str]) -> Vec<String> {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|f| ("tracestate", *f)).collect();
        let mut map = headers(&pairs);
        let ctx = Outgoing { continued_from: from, ..outgoing(TRACE_BYTES, true, Some([0xcd; 8])) };
        inject(&mut map, &ctx, &[]);
        map.get_all("tracestate").iter().map(|v| v.to_str().expect("ascii").to_string()).collect()
    }

    const NONE: Vec<String> = Vec::new();

    #[test]
    fn tracestate_is_forwarded_only_with_the_traceparent_it_came_with() {
        let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
        assert_eq!(tracestate_after(Some(Format::Tracecontext), &[state]), vec![state]);
        // A new trace, or one continued from another format: W3C says discard.
        for from in [None, Some(Format::B3Single), Some(Format::B3Multi), Some(Format::Jaeger)] {
            assert_eq!(tracestate_after(from, &[state]), NONE, "{from:?}");
        }
    }

    #[test]
    fn tracestate_fields_are_combined_in_order() {
        let w3c = Some(Format::Tracecontext);
        // W3C test suite: test_tracestate_multiple_headers_different_keys.
        assert_eq!(
            tracestate_after(w3c, &["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]),
            vec!["foo=1,bar=2,rojo=1,congo=2,baz=3"]
        );
        // test_tracestate_empty_header: an empty field adds nothing; nothing is not sent.
        assert_eq!(tracestate_after(w3c, &["foo=1", ""]), vec!["foo=1"]);
        assert_eq!(tracestate_after(w3c, &["", "foo=1"]), vec!["foo=1"]);
        assert_eq!(tracestate_after(w3c, &[""]), NONE);
        assert_eq!(tracestate_after(w3c, &["", " , "]), NONE);
        // A lone valid field goes on byte for byte, optional whitespace and empty members included.
        assert_eq!(tracestate_after(w3c, &["foo=1 \t , \t bar=2,,"]), vec!["foo=1 \t , \t bar=2,,"]);
        // Duplicates and the member limit apply to the combined list.
        assert_eq!(tracestate_after(w3c, &["foo=1", "foo=1"]), NONE);
        let sixteen = |p: &str| (1..=16).map(|i| format!("{p}{i}=v")).collect::<Vec<_>>().join(",");
        let (a, b) = (sixteen("a"), sixteen("b"));
        assert_eq!(tracestate_after(w3c, &[&a, &b]), vec![format!("{a},{b}")]);
        assert_eq!(tracestate_after(w3c, &[&a, &b, "c=1"]), NONE);
        assert_eq!(tracestate_after(w3c, &[&a, "B=1"]), NONE);
    }

    fn members(n: usize) -> String {
        (1..=n).map(|i| format!("bar{i:02}={i:02}")).collect::<Vec<_>>().join(",")
    }

    /// Every character the grammar allows in a value, in order (it starts with a space).
    fn every_value_char() -> String {
        (0x20u8..=0x7e).filter(|c| *c != b',' && *c != b'=').map(char::from).collect()
    }

    const EVERY_KEY_CHAR: &str = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";

    #[test]
    fn tracestate_valid() {
        let value = every_value_char();
        let cases: Vec<(String, usize)> = vec![
            ("foo=1".into(), 1),
            ("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".into(), 2),
            // Optional whitespace around members, empty members (test_tracestate_ows_handling).
            ("foo=1 \t , \t bar=2, \t baz=3".into(), 3),
            ("\t foo=1 \t".into(), 1),
            ("a=1,,b=2, ,".into(), 2),
            (String::new(), 0),
            (" \t ".into(), 0),
            (",,".into(), 0),
            // test_tracestate_all_allowed_characters.
            (format!("{EVERY_KEY_CHAR}={value}"), 1),
            (format!("{EVERY_KEY_CHAR}@a-z0-9_-*/={value}"), 1),
            ("0tenant@vendor=1".into(), 1),
            ("foo= leading spaces are part of the value".into(), 1),
            // test_tracestate_key_length_limit and the value limit.
            (format!("{}=1", "z".repeat(256)), 1),
            (format!("{}@{}=1", "t".repeat(241), "v".repeat(14)), 1),
            (format!("k={}", "v".repeat(256)), 1),
            // test_tracestate_member_count_limit.
            (members(32), 32),
        ];
        for (value, count) in cases {
            assert_eq!(tracestate_members(value.as_bytes()), Some(count), "{value:?}");
        }
    }

    #[test]
    fn tracestate_invalid() {
        let cases: Vec<Vec<u8>> = [
            "foo",
            "foo=1,bar",
            "=1",
            "foo=",
            "foo=,bar=3",
            "foo=bar=baz",
            "FOO=1",
            "Foo=1",
            "foo =1",
            "foo.bar=1",
            "1foo=1",
            "_foo=1",
            "foo@=1,bar=2",
            "@foo=1,bar=2",
            "foo@@bar=1,bar=2",
            "foo@bar@baz=1,bar=2",
            "t@1v=1",
            "t@V=1",
            "_t@v=1",
            "foo=1,foo=1",
            "foo=1,foo=2",
            "foo=1,bar=2,foo=3",
            "foo=a\tb",
            "foo=\x7f",
            "foo=1;bar=2",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([
            b"foo=\xc3\xa9".to_vec(),
            b"foo=\xff".to_vec(),
            b"f\xffo=1".to_vec(),
            format!("{}=1", "z".repeat(257)).into_bytes(),
            format!("{}@v=1", "t".repeat(242)).into_bytes(),
            format!("t@{}=1", "v".repeat(15)).into_bytes(),
            format!("k={}", "v".repeat(257)).into_bytes(),
            members(33).into_bytes(),
            format!("{},bar01=again", members(31)).into_bytes(),
        ])
        .collect();
        for value in &cases {
            assert_eq!(tracestate_members(value), None, "{:?}", String::from_utf8_lossy(value));
        }
    }

    /// Whether the SDK's `TraceState` parser accepts `value` and keeps at least one member
    /// (its `TraceContextPropagator` drops a tracestate it cannot parse).
    fn sdk_keeps_tracestate(value: &str) -> bool {
        use std::str::FromStr;
        opentelemetry::trace::TraceState::from_str(value).is_ok_and(|s| !s.header().is_empty())
    }

    fn we_keep_tracestate(value: &str) -> bool {
        matches!(tracestate_members(value.as_bytes()), Some(1..))
    }

    #[test]
    fn tracestate_agrees_with_opentelemetry_sdk() {
        let value = every_value_char();
        for value in [
            "foo=1".to_string(),
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".into(),
            "foo=1 \t , \t bar=2, \t baz=3".into(),
            "a=1,,b=2, ,".into(),
            String::new(),
            ",,".into(),
            format!("{EVERY_KEY_CHAR}={value}"),
            "0tenant@vendor=1".into(),
            format!("{}=1", "z".repeat(256)),
            format!("k={}", "v".repeat(256)),
            members(32),
            "foo".into(),
            "foo=1,bar".into(),
            "foo=bar=baz".into(),
            "FOO=1".into(),
            "foo =1".into(),
            "foo.bar=1".into(),
            "_foo=1".into(),
            "@foo=1,bar=2".into(),
            "foo@@bar=1,bar=2".into(),
            "foo@bar@baz=1,bar=2".into(),
            format!("{}=1", "z".repeat(257)),
            format!("t@{}=1", "v".repeat(15)),
            format!("k={}", "v".repeat(257)),
        ] {
            assert_eq!(we_keep_tracestate(&value), sdk_keeps_tracestate(&value), "{value:?}");
        }
    }

    /// Each tracestate where we knowingly disagree with the SDK, asserting both sides so that
    /// the list stays true when either implementation changes.
    #[test]
    fn tracestate_documented_differences() {
        // The SDK checks a value only for `,` and `=` and its length, allows a digit to start
        // the system id (as later drafts do) and an empty one, does not bound the tenant id,
        // keeps duplicated keys, and keeps the first 32 members of a longer list. Level 1 of
        // the spec (and its test suite) rejects each; we discard the whole header.
        for value in [
            "foo=1,foo=2".to_string(),
            "foo=".into(),
            "foo=,bar=3".into(),
            "foo=a\tb".into(),
            "foo=\u{7f}".into(),
            "foo=\u{e9}".into(),
            "foo@=1,bar=2".into(),
            "t@1v=1".into(),
            format!("{}@v=1", "t".repeat(242)),
            members(33),
        ] {
            assert!(!we_keep_tracestate(&value), "{value:?}");
            assert!(sdk_keeps_tracestate(&value), "SDK keeps {value:?}");
        }
        // The spec allows a system id of 14 characters; the SDK stops at 13.
        let value = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
        assert!(we_keep_tracestate(&value));
        assert!(!sdk_keeps_tracestate(&value));
    }

    fn outgoing(trace: [u8; 16], sampled: bool, parent: Option<[u8; 8]>) -> Outgoing {
        Outgoing {
            trace_id: trace,
            span_id: [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
            parent_span_id: parent,
            sampled,
            // A new trace unless a test says otherwise: no incoming tracestate is kept.
            continued_from: None,
        }
    }

    const TRACE_BYTES: [u8; 16] =
        [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36];

    #[test]
    fn inject_writes_exact_values() {
        let mut map = HeaderMap::new();
        let all = [Propagator::Tracecontext, Propagator::B3, Propagator::B3multi, Propagator::Jaeger];
        inject(&mut map, &outgoing(TRACE_BYTES, true, Some([0xcd; 8])), &all);
        assert_eq!(header_str(&map, "traceparent"), Some(&*format!("00-{TRACE}-{SPAN}-01")));
        assert_eq!(header_str(&map, "b3"), Some(&*format!("{TRACE}-{SPAN}-1")));
        assert_eq!(header_str(&map, "x-b3-traceid"), Some(TRACE));
        assert_eq!(header_str(&map, "x-b3-spanid"), Some(SPAN));
        assert_eq!(header_str(&map, "x-b3-sampled"), Some("1"));
        assert_eq!(header_str(&map, "x-b3-parentspanid"), Some("cdcdcdcdcdcdcdcd"));
        assert_eq!(header_str(&map, "uber-trace-id"), Some(&*format!("{TRACE}:{SPAN}:0:01")));
        assert_eq!(map.len(), 7);

        let mut map = HeaderMap::new();
        inject(&mut map, &outgoing(TRACE_BYTES, false, None), &all);
        assert_eq!(header_str(&map, "traceparent"), Some(&*format!("00-{TRACE}-{SPAN}-00")));
        assert_eq!(header_str(&map, "b3"), Some(&*format!("{TRACE}-{SPAN}-0")));
        assert_eq!(header_str(&map, "x-b3-sampled"), Some("0"));
        assert_eq!(header_str(&map, "x-b3-parentspanid"), None);
        assert_eq!(header_str(&map, "uber-trace-id"), Some(&*format!("{TRACE}:{SPAN}:0:00")));
    }

    #[test]
    fn inject_always_writes_traceparent_only_by_default() {
        for formats in [&[][..], &[Propagator::Tracecontext][..]] {
            let mut map = HeaderMap::new();
            inject(&mut map, &outgoing(TRACE_BYTES, true, None), formats);
            assert_eq!(map.len(), 1);
            assert_eq!(header_str(&map, "traceparent"), Some(&*format!("00-{TRACE}-{SPAN}-01")));
        }
    }

    #[test]
    fn inject_replaces_incoming_context_of_written_formats() {
        let old_tp = "00-12345678901234567890123456789012-1234567890123456-01";
        let mut map = headers(&[
            ("traceparent", old_tp),
            ("traceparent", old_tp),
            ("tracestate", "vendor=opaque"),
            ("b3", "12345678901234567890123456789012-1234567890123456-1"),
            ("x-b3-traceid", "12345678901234567890123456789012"),
            ("x-b3-spanid", "1234567890123456"),
            ("x-b3-parentspanid", "6543210987654321"),
            ("x-b3-flags", "1"),
            ("uber-trace-id", "1234:5678:0:1"),
            ("uber-trace-id", "1234:5678:0:1"),
        ]);
        let all = [Propagator::B3, Propagator::B3multi, Propagator::Jaeger];
        inject(&mut map, &outgoing(TRACE_BYTES, false, None), &all);
        for name in ["traceparent", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "uber-trace-id"] {
            assert_eq!(map.get_all(name).iter().count(), 1, "{name}");
        }
        assert_eq!(header_str(&map, "traceparent"), Some(&*format!("00-{TRACE}-{SPAN}-00")));
        // A stale debug flag would flip the upstream to sampled, a stale parent would lie.
        assert_eq!(header_str(&map, "x-b3-flags"), None);
        assert_eq!(header_str(&map, "x-b3-parentspanid"), None);
        // A new trace (`continued_from: None`): the caller's tracestate belongs to another one.
        assert_eq!(header_str(&map, "tracestate"), None);
        assert_eq!(extract(&map).map(|e| e.sampled), Some(Some(false)));
    }

    #[test]
    fn inject_removes_the_formats_it_does_not_write() {
        // Left in place, each would name the caller's span next to the sidecar's traceparent.
        let stale = [
            ("b3", "12345678901234567890123456789012-1234567890123456-1"),
            ("x-b3-traceid", "12345678901234567890123456789012"),
            ("x-b3-spanid", "1234567890123456"),
            ("x-b3-parentspanid", "6543210987654321"),
            ("x-b3-sampled", "1"),
            ("x-b3-flags", "1"),
            ("uber-trace-id", "12345678901234567890123456789012:1234567890123456:0:1"),
            ("uberctx-user", "baggage is not a context"),
            ("baggage", "k=v"),
        ];
        let only = |format: Option<Propagator>, names: &[&str]| {
            let mut map = headers(&stale);
            let formats: Vec<Propagator> = format.into_iter().collect();
            inject(&mut map, &outgoing(TRACE_BYTES, true, Some([0xcd; 8])), &formats);
            let mut left: Vec<&str> = map.keys().map(|k| k.as_str()).filter(|k| *k != "traceparent").collect();
            left.sort_unstable();
            let mut want = names.to_vec();
            want.extend(["baggage", "uberctx-user"]);
            want.sort_unstable();
            assert_eq!(left, want, "{format:?}");
            // What is left was written for the sidecar's span: no stale id survives.
            for name in names {
                let v = header_str(&map, name).expect("written");
                assert!(!v.contains("123456789012") && !v.contains("654321"), "{name}: {v}");
            }
        };
        only(None, &[]);
        only(Some(Propagator::Tracecontext), &[]);
        only(Some(Propagator::B3), &["b3"]);
        only(Some(Propagator::B3multi), &["x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-parentspanid"]);
        only(Some(Propagator::Jaeger), &["uber-trace-id"]);
    }

    #[test]
    fn round_trip_each_format() {
        // A 64-bit-style id (high half zero) checks that padding survives the trip.
        let short = [0, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36];
        let formats = [
            (Propagator::Tracecontext, Format::Tracecontext, &["traceparent"][..]),
            (Propagator::B3, Format::B3Single, &["b3"][..]),
            (
                Propagator::B3multi,
                Format::B3Multi,
                &["x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-parentspanid"][..],
            ),
            (Propagator::Jaeger, Format::Jaeger, &["uber-trace-id"][..]),
        ];
        for (format, read_as, names) in formats {
            for trace in [TRACE_BYTES, short] {
                for sampled in [true, false] {
                    let sent = outgoing(trace, sampled, Some([7; 8]));
                    let mut injected = HeaderMap::new();
                    inject(&mut injected, &sent, &[format]);
                    // Only this format's headers, so traceparent cannot win instead.
                    let mut only = HeaderMap::new();
                    for name in names {
                        if let Some(v) = injected.get(*name) {
                            only.insert(HeaderName::from_static(name), v.clone());
                        }
                    }
                    let got = extract(&only).expect("round trip extracts");
                    assert_eq!(
                        got,
                        Extracted {
                            trace_id: trace,
                            parent_span_id: sent.span_id,
                            sampled: Some(sampled),
                            format: read_as
                        },
                        "{format:?}"
                    );
                }
            }
        }
    }

    // ---- Cross-checks against the OpenTelemetry reference propagators ----

    /// opentelemetry-zipkin 0.33 deprecates the whole crate for its exporter, the B3
    /// propagator included; it is still OpenTelemetry Rust's B3 implementation, and is only
    /// an oracle here, so the allowance is fenced into this module.
    #[allow(deprecated)]
    mod zipkin {
        use opentelemetry_zipkin::{B3Encoding, Propagator};

        pub fn single() -> Propagator {
            Propagator::with_encoding(B3Encoding::SingleHeader)
        }

        pub fn multi() -> Propagator {
            Propagator::with_encoding(B3Encoding::MultipleHeader)
        }

        pub fn both() -> Propagator {
            Propagator::with_encoding(B3Encoding::SingleAndMultiHeader)
        }
    }

    /// (trace id hex, span id hex, sampled) as extracted by a reference propagator; None when
    /// its result is not a valid span context.
    fn official(propagator: &dyn TextMapPropagator, pairs: &[(&str, &str)]) -> Option<(String, String, Option<bool>)> {
        // The reference Extractor for HashMap looks keys up lower-cased.
        let carrier: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
        let cx = propagator.extract_with_context(&Context::new(), &carrier);
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let flags = sc.trace_flags().to_u8();
        // opentelemetry-zipkin's private flags: 0x02 deferred, 0x04 debug (which B3 defines
        // as an accept decision, though the reference leaves the sampled bit clear).
        let sampled = if flags & 0x02 != 0 { None } else { Some(flags & 0x05 != 0) };
        Some((sc.trace_id().to_string(), sc.span_id().to_string(), sampled))
    }

    fn cross_check(propagator: &dyn TextMapPropagator, table: &[Vec<(&str, &str)>]) {
        for set in table {
            assert_eq!(ours(set), official(propagator, set), "{set:?}");
        }
    }

    fn b3_single_table() -> Vec<Vec<(&'static str, String)>> {
        let t = TRACE;
        let s = SPAN;
        [
            format!("{t}-{s}"),
            format!("{t}-{s}-0"),
            format!("{t}-{s}-1"),
            format!("{t}-{s}-d"),
            format!("{t}-{s}-1-00000000000000cd"),
            format!("{t}-{s}-0-0000000000000000"),
            format!("{TRACE64}-{s}-1-00000000000000cd"),
            format!("{TRACE64}-{s}"),
            "0".into(),
            "1".into(),
            "d".into(),
            "-".into(),
            String::new(),
            t.to_string(),
            format!("{t}-{s}-1-00000000000000cd-x"),
            format!("{}-{s}-1", &t[..15]),
            format!("{}-{s}-1", &t[..31]),
            format!("{t}a-{s}-1"),
            format!("{t}-{}-1", &s[..15]),
            format!("{t}-{s}a-1"),
            format!("{t}-{s}-1-00cd"),
            format!("4bf92f3577b34da6a3ce929d0e0e473x-{s}-1"),
            format!("{t}-00f067aa0ba902bx-1"),
            format!("4BF92F3577B34DA6A3CE929D0E0E4736-{s}-1"),
            format!("{t}-00F067AA0BA902B7-1"),
            format!("{t}-{s}-1-00000000000000CD"),
            format!("{t}-{s}-2"),
            format!("{t}-{s}-true"),
            format!("{t}-{s}-D"),
            format!("00000000000000000000000000000000-{s}-1"),
            format!("0000000000000000-{s}-1"),
            format!("{t}-0000000000000000-1"),
            // Deliberately left out (see `documented_differences`): trailing dashes and a
            // leading `+`, which the reference accepts.
        ]
        .into_iter()
        .map(|v| vec![("b3", v)])
        .collect()
    }

    fn b3_multi_table() -> Vec<Vec<(&'static str, String)>> {
        let full = |t: &str, s: &str, extra: &[(&'static str, &str)]| {
            let mut set = vec![("X-B3-TraceId", t.to_string()), ("X-B3-SpanId", s.to_string())];
            set.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            set
        };
        vec![
            full(TRACE, SPAN, &[("X-B3-Sampled", "1")]),
            full(TRACE, SPAN, &[("X-B3-Sampled", "0")]),
            full(TRACE, SPAN, &[("X-B3-Sampled", "true")]),
            full(TRACE, SPAN, &[("X-B3-Sampled", "false")]),
            full(TRACE, SPAN, &[]),
            full(TRACE64, SPAN, &[("X-B3-Sampled", "1")]),
            full(TRACE, SPAN, &[("X-B3-Flags", "1")]),
            full(TRACE, SPAN, &[("X-B3-Flags", "1"), ("X-B3-Sampled", "0")]),
            full(TRACE, SPAN, &[("X-B3-Flags", "2"), ("X-B3-Sampled", "1")]),
            full(TRACE, SPAN, &[("X-B3-ParentSpanId", "garbage")]),
            full(TRACE, SPAN, &[("X-B3-ParentSpanId", "00000000000000cd"), ("X-B3-Sampled", "1")]),
            vec![("X-B3-TraceId", TRACE.to_string())],
            vec![("X-B3-SpanId", SPAN.to_string())],
            full(TRACE, "", &[]),
            full("", SPAN, &[]),
            full(&TRACE[..31], SPAN, &[]),
            full(&TRACE[..15], SPAN, &[]),
            full(TRACE, &format!("{SPAN}0"), &[]),
            full(TRACE, &SPAN[..15], &[]),
            full("4BF92F3577B34DA6A3CE929D0E0E4736", SPAN, &[]),
            full(TRACE, "00F067AA0BA902B7", &[]),
            full("4bf92f3577b34da6a3ce929d0e0e473g", SPAN, &[]),
            full("00000000000000000000000000000000", SPAN, &[]),
            full(TRACE, "0000000000000000", &[]),
            full(TRACE, SPAN, &[("X-B3-Sampled", "yes")]),
            full(TRACE, SPAN, &[("X-B3-Sampled", "d")]),
            full(TRACE, SPAN, &[("X-B3-Sampled", "True")]),
            full(TRACE, SPAN, &[("X-B3-Sampled", "")]),
            // Deliberately left out (see `documented_differences`): `X-B3-Flags: 0`, which
            // the reference reads as "not sampled" overriding X-B3-Sampled.
        ]
    }

    fn as_pairs<'a>(table: &'a [Vec<(&'static str, String)>]) -> Vec<Vec<(&'static str, &'a str)>> {
        table.iter().map(|set| set.iter().map(|(k, v)| (*k, v.as_str())).collect()).collect()
    }

    #[test]
    fn b3_single_agrees_with_opentelemetry_zipkin() {
        // With SingleHeader encoding the reference accepts `d` (and not `true`) in `b3`.
        let zipkin = zipkin::single();
        cross_check(&zipkin, &as_pairs(&b3_single_table()));
    }

    #[test]
    fn b3_multi_agrees_with_opentelemetry_zipkin() {
        // With MultipleHeader encoding the reference accepts `true` in X-B3-Sampled.
        let zipkin = zipkin::multi();
        cross_check(&zipkin, &as_pairs(&b3_multi_table()));
    }

    #[test]
    fn b3_single_falls_back_to_multi_like_opentelemetry_zipkin() {
        let zipkin = zipkin::both();
        let multi = [("X-B3-TraceId", TRACE), ("X-B3-SpanId", SPAN), ("X-B3-Sampled", "1")];
        let valid_b3 = format!("{FALLBACK_TRACE}-{FALLBACK_SPAN}-0");
        let bad_b3 = format!("{TRACE}-{SPAN}-x");
        for b3 in ["1", "0", "garbage", &bad_b3, &valid_b3] {
            let mut set = vec![("b3", b3)];
            set.extend(multi);
            assert_eq!(ours(&set), official(&zipkin, &set), "{set:?}");
        }
    }

    #[test]
    fn traceparent_agrees_with_opentelemetry_sdk() {
        let t = TRACE;
        let s = SPAN;
        let values = [
            format!("00-{t}-{s}-01"),
            format!("00-{t}-{s}-00"),
            format!("00-{t}-{s}-03"),
            format!("00-{t}-{s}-09"),
            format!("00-{t}-{s}-08"),
            format!("01-{t}-{s}-01"),
            format!("02-{t}-{s}-09-XYZxsf09"),
            format!("cc-{t}-{s}-01-what-the-future-will-be-like"),
            format!("fe-{t}-{s}-00"),
            String::new(),
            format!("00-{t}-{s}"),
            format!("00-{t}-{s}-01-extra"),
            format!("00-{t}-{s}-0100"),
            format!("ff-{t}-{s}-01"),
            format!("qw-{t}-{s}-01"),
            format!("00-ab{t}-{s}-01"),
            format!("00-{t}-cd{s}-01"),
            format!("00-4bf92f3577b34da6a3ce929d0e0e473g-{s}-01"),
            format!("00-{t}-00f067aa0ba902bz-01"),
            format!("00-{t}-{s}-qw"),
            format!("00-4BF92F3577B34DA6A3CE929D0E0E4736-{s}-01"),
            format!("00-{t}-00F067AA0BA902B7-01"),
            format!("00-{t}-{s}-0A"),
            format!("00-00000000000000000000000000000000-{s}-01"),
            format!("00-{t}-0000000000000000-01"),
            // Deliberately left out (see `documented_differences`): short or signed
            // fields, an upper-case version and a trailing dash on version 00, all of
            // which the reference accepts.
        ];
        let table: Vec<Vec<(&str, &str)>> = values.iter().map(|v| vec![("traceparent", v.as_str())]).collect();
        cross_check(&TraceContextPropagator::new(), &table);
    }

    #[test]
    fn injected_headers_parse_with_reference_propagators() {
        let all = [Propagator::B3, Propagator::B3multi];
        for sampled in [true, false] {
            let mut map = HeaderMap::new();
            inject(&mut map, &outgoing(TRACE_BYTES, sampled, Some([7; 8])), &all);
            let pairs: Vec<(&str, &str)> =
                map.iter().map(|(k, v)| (k.as_str(), v.to_str().expect("ascii header"))).collect();
            let pick = |names: &[&str]| -> Vec<(&str, &str)> {
                pairs.iter().filter(|(k, _)| names.contains(k)).copied().collect()
            };
            let want = ctx(TRACE, SPAN, Some(sampled));
            assert_eq!(official(&TraceContextPropagator::new(), &pick(&["traceparent"])), want);
            assert_eq!(official(&zipkin::single(), &pick(&["b3"])), want);
            let multi = pick(&["x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-parentspanid"]);
            assert_eq!(official(&zipkin::multi(), &multi), want);
        }
    }

    /// Each case where we knowingly disagree with a reference propagator, asserting both
    /// sides so that the list stays true when either implementation changes.
    #[test]
    fn documented_differences() {
        let t = TRACE;
        let s = SPAN;
        let w3c = TraceContextPropagator::new();
        // The SDK splits on `-` and parses each field with `from_str_radix`, so it accepts
        // fields of any width (and a leading `+`); W3C fixes the widths, and version 00
        // must be exactly 55 bytes.
        for value in [
            format!("00-{t}-{s}-01-"),
            format!("00-{t}-{s}-1"),
            format!("00-4bf9-{s}-01"),
            format!("00-{t}-f0-01"),
            format!("00-+bf92f3577b34da6a3ce929d0e0e473-{s}-01"),
            format!("0-{t}-{s}-01"),
            format!("01-{t}-{s}-001"),
            // The SDK checks case on every field but the version.
            format!("0A-{t}-{s}-01"),
        ] {
            let set = [("traceparent", value.as_str())];
            assert_eq!(ours(&set), None, "{value}");
            assert!(official(&w3c, &set).is_some(), "SDK accepts {value}");
        }

        let zipkin = zipkin::both();
        // The reference splits with `split_terminator` (a trailing dash is dropped) and
        // parses with `from_str_radix` (a leading `+` passes); neither is B3.
        for value in [format!("{t}-{s}-"), format!("{t}-{s}-1-"), format!("+bf92f3577b34da6-{s}-1")] {
            let set = [("b3", value.as_str())];
            assert_eq!(ours(&set), None, "{value}");
            assert!(official(&zipkin, &set).is_some(), "zipkin accepts {value}");
        }
        // `X-B3-Flags: 0` is undefined in B3; the reference reads it as an explicit
        // "not sampled" that overrides X-B3-Sampled (and un-defers a missing one).
        let set = [("X-B3-TraceId", t), ("X-B3-SpanId", s), ("X-B3-Flags", "0"), ("X-B3-Sampled", "1")];
        assert_eq!(ours(&set), ctx(t, s, Some(true)));
        assert_eq!(official(&zipkin, &set), ctx(t, s, Some(false)));
        let set = [("X-B3-TraceId", t), ("X-B3-SpanId", s), ("X-B3-Flags", "0")];
        assert_eq!(ours(&set), ctx(t, s, None));
        assert_eq!(official(&zipkin, &set), ctx(t, s, Some(false)));
        // Debug `d` keeps the reference's sampled bit clear (only its private debug bit is
        // set), although B3 defines debug as an accept decision.
        let value = format!("{t}-{s}-d");
        let carrier: HashMap<String, String> = [("b3".to_string(), value)].into();
        let cx = zipkin.extract_with_context(&Context::new(), &carrier);
        assert!(!cx.span().span_context().is_sampled());
        assert_eq!(ours(&[("b3", &format!("{t}-{s}-d"))]), ctx(t, s, Some(true)));
        // The reference's accepted sampling words depend on its own inject encoding: with
        // multi-header encoding `b3: ...-d` is rejected and `b3: ...-true` accepted, with
        // single-header encoding the reverse. Ours do not depend on configuration.
        let multi_only = zipkin::multi();
        let debug = format!("{t}-{s}-d");
        assert_eq!(official(&multi_only, &[("b3", &debug)]), None);
        let word = format!("{t}-{s}-true");
        assert_eq!(official(&multi_only, &[("b3", &word)]), ctx(t, s, Some(true)));
        assert_eq!(ours(&[("b3", &word)]), None);
    }
}
