//! The trace identity of one proxied request: ids, parent and sampling decision.
//! Continues an incoming context (see `propagation`); a missing or malformed one starts a new trace.

use http::HeaderMap;

use super::propagation;
use crate::config::Propagator;

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
        if let Some(found) = propagation::extract(headers) {
            // A caller that deferred the decision (B3 without a flag) gets the ratio sampler.
            let sampled = found.sampled.unwrap_or_else(|| ratio_samples(&found.trace_id, ratio));
            return TraceContext {
                trace_id: found.trace_id,
                span_id,
                parent_span_id: Some(found.parent_span_id),
                sampled,
            };
        }
        let trace_id = random_trace_id();
        TraceContext { trace_id, span_id, parent_span_id: None, sampled: ratio_samples(&trace_id, ratio) }
    }

    /// Writes the context for the upstream: same trace, the sidecar's span as parent.
    pub fn inject(&self, headers: &mut HeaderMap, formats: &[Propagator]) {
        let outgoing = propagation::Outgoing {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            sampled: self.sampled,
        };
        propagation::inject(headers, &outgoing, formats);
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
    use http::header::HeaderValue;

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
        let mut upstream = HeaderMap::new();
        ctx.inject(&mut upstream, &[]);
        let out = upstream["traceparent"].to_str().expect("ascii");
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(out.ends_with("-01"));
        assert_eq!(&out[36..52], ctx.span_id_hex().as_str());
    }

    #[test]
    fn a_deferred_b3_decision_falls_back_to_the_ratio() {
        let mut h = HeaderMap::new();
        h.insert("b3", HeaderValue::from_static("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1"));
        assert!(!TraceContext::from_headers(&h, 0.0).sampled);
        assert!(TraceContext::from_headers(&h, 1.0).sampled);
        assert_eq!(TraceContext::from_headers(&h, 1.0).trace_id_hex().as_str(), "80f198ee56343ba864fe8b2a57d3eff7");
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
