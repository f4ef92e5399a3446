//! The trace identity of one proxied request: ids, parent and sampling decision.
//! Extracted from incoming W3C `traceparent` (a malformed header starts a new trace).

use http::HeaderMap;
use http::header::HeaderValue;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The sidecar's own span for this request.
    pub span_id: [u8; 8],
    /// The caller's span, when the request carried a trace context.
    pub parent_span_id: Option<[u8; 8]>,
    pub sampled: bool,
}

impl TraceContext {
    /// Continues the caller's trace or starts a new one; `ratio` samples new traces by trace id.
    pub fn from_headers(headers: &HeaderMap, ratio: f64) -> Self {
        let span_id = random_span_id();
        if let Some((trace_id, parent, sampled)) = headers.get("traceparent").and_then(parse_traceparent) {
            return TraceContext { trace_id, span_id, parent_span_id: Some(parent), sampled };
        }
        let trace_id = random_trace_id();
        TraceContext { trace_id, span_id, parent_span_id: None, sampled: ratio_samples(&trace_id, ratio) }
    }

    /// The `traceparent` to send upstream: same trace, the sidecar's span as parent.
    pub fn traceparent(&self) -> HeaderValue {
        let mut buf = [0u8; 55];
        buf[..3].copy_from_slice(b"00-");
        hex_into(&self.trace_id, &mut buf[3..35]);
        buf[35] = b'-';
        hex_into(&self.span_id, &mut buf[36..52]);
        buf[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        // Only hex digits and dashes were written.
        HeaderValue::from_bytes(&buf)
            .unwrap_or_else(|_| HeaderValue::from_static("00-00000000000000000000000000000000-0000000000000000-00"))
    }

    pub fn trace_id_hex(&self) -> HexId<32> {
        HexId::new(&self.trace_id)
    }

    pub fn span_id_hex(&self) -> HexId<16> {
        HexId::new(&self.span_id)
    }
}

/// Whether a new trace is sampled: the W3C/OTel trace-id-ratio rule on the id's low 8 bytes.
pub fn ratio_samples(trace_id: &[u8; 16], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    (u64::from_be_bytes(low) >> 1) < bound
}

/// Parses `00-<32 hex>-<16 hex>-<2 hex>`; all-zero ids and version ff are invalid.
pub fn parse_traceparent(v: &HeaderValue) -> Option<([u8; 16], [u8; 8], bool)> {
    let b = v.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = unhex::<1>(&b[0..2])?[0];
    if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let trace_id = unhex::<16>(&b[3..35])?;
    let parent = unhex::<8>(&b[36..52])?;
    let flags = unhex::<1>(&b[53..55])?[0];
    if trace_id == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace_id, parent, flags & 1 == 1))
}

fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None, // W3C requires lower-case hex.
    };
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[(b >> 4) as usize];
        out[2 * i + 1] = DIGITS[(b & 0xf) as usize];
    }
}

fn random_trace_id() -> [u8; 16] {
    loop {
        let id = fastrand::u128(..).to_be_bytes();
        if id != [0; 16] {
            return id;
        }
    }
}

fn random_span_id() -> [u8; 8] {
    loop {
        let id = fastrand::u64(..).to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

/// A lower-case hex rendering of an id, on the stack.
pub struct HexId<const N: usize>([u8; N]);

impl<const N: usize> HexId<N> {
    fn new(bytes: &[u8]) -> Self {
        let mut out = [b'0'; N];
        hex_into(bytes, &mut out);
        HexId(out)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl<const N: usize> std::fmt::Display for HexId<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(tp: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_str(tp).expect("header value"));
        h
    }

    #[test]
    fn continues_a_valid_traceparent() {
        let ctx = TraceContext::from_headers(&headers("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), 0.0);
        assert_eq!(ctx.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_span_id, Some([0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]));
        assert!(ctx.sampled, "the parent's sampled flag wins over the ratio");
        let out = ctx.traceparent();
        let out = out.to_str().expect("ascii");
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(out.ends_with("-01"));
        assert_eq!(&out[36..52], ctx.span_id_hex().as_str());
    }

    #[test]
    fn malformed_traceparents_start_new_traces() {
        for bad in [
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let ctx = TraceContext::from_headers(&headers(bad), 1.0);
            assert_eq!(ctx.parent_span_id, None, "{bad}");
            assert_ne!(ctx.trace_id_hex().as_str(), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
        }
    }

    #[test]
    fn ratio_sampling_is_proportional() {
        let sampled = (0..20_000).filter(|_| ratio_samples(&random_trace_id(), 0.25)).count();
        assert!((4_000..6_000).contains(&sampled), "{sampled}");
        assert!(ratio_samples(&random_trace_id(), 1.0));
        assert!(!ratio_samples(&random_trace_id(), 0.0));
    }
}
