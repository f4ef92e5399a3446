//! What redline knows of gRPC (pure logic, no I/O), for the proxy, its telemetry and `/readyz`:
//! which requests are gRPC calls, their status codes and how they are classified, the
//! `grpc-timeout` header, the trailers-only answers redline gives a gRPC client when it cannot
//! forward a call, and the messages of the standard health check (`grpc.health.v1`).
//!
//! Classification follows the OpenTelemetry RPC conventions (v1.45.0, gRPC server side): only
//! UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS are the
//! server's errors. The HTTP-to-gRPC mapping is gRPC's own (doc/http-grpc-status-mapping.md).

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// A gRPC status code (doc/statuscodes.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

impl Code {
    /// The code of a `grpc-status` value: its decimal digits name a known code, anything else
    /// (not a number, out of range, padded) is UNKNOWN, as gRPC clients read it.
    pub fn parse(value: &[u8]) -> Code {
        let n = match value {
            [d] if d.is_ascii_digit() => (d - b'0') as usize,
            [b'1', d] if d.is_ascii_digit() => 10 + (d - b'0') as usize,
            _ => return Code::Unknown,
        };
        CODES.get(n).copied().unwrap_or(Code::Unknown)
    }

    /// The code of a well-formed `grpc-status` value; None for anything else.
    pub fn parse_strict(value: &[u8]) -> Option<Code> {
        let code = Code::parse(value);
        (code.header_value().as_bytes() == value).then_some(code)
    }

    pub fn from_u8(n: u8) -> Option<Code> {
        CODES.get(n as usize).copied()
    }

    /// gRPC's mapping of an HTTP status other than 200 that came without a `grpc-status`.
    pub fn from_http_status(status: u16) -> Code {
        match status {
            200 => Code::Ok,
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    /// The name OpenTelemetry's `rpc.response.status_code` and `error.type` carry.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// Whether the server is to blame (the OpenTelemetry gRPC server-span list).
    pub fn is_server_error(self) -> bool {
        matches!(
            self,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        )
    }

    fn header_value(self) -> HeaderValue {
        const VALUES: [&str; 17] =
            ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"];
        HeaderValue::from_static(VALUES[self as usize])
    }
}

/// Whether a request is a gRPC call: its `content-type` is `application/grpc` or one of its
/// `application/grpc+proto`-style subtypes (gRPC over HTTP/2, PROTOCOL-HTTP2.md).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| is_grpc_content_type(v.as_bytes()))
}

pub fn is_grpc_content_type(v: &[u8]) -> bool {
    const PREFIX: &[u8] = b"application/grpc";
    v.len() >= PREFIX.len()
        && v[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
        && matches!(v.get(PREFIX.len()), None | Some(b'+' | b';'))
}

/// The status a response head carries itself: a trailers-only response (`grpc-status` among
/// the headers) or, without one, what its HTTP status maps to. None: a 200 whose status is
/// still to come in the trailers.
pub fn status_of_head(status: u16, headers: &HeaderMap) -> Option<Code> {
    match headers.get(GRPC_STATUS) {
        Some(v) => Some(Code::parse(v.as_bytes())),
        None if status != 200 => Some(Code::from_http_status(status)),
        None => None,
    }
}

/// The status of a trailer section, if it has one.
pub fn status_of_trailers(trailers: &HeaderMap) -> Option<Code> {
    trailers.get(GRPC_STATUS).map(|v| Code::parse(v.as_bytes()))
}

/// The status a section that ends a call (trailers, or a trailers-only head) carries, made
/// well-formed in place: a missing or malformed `grpc-status` becomes UNKNOWN with a
/// `grpc-message` saying why, so that the client reads the status redline counts.
pub fn checked_status(section: &mut HeaderMap) -> Code {
    let why = match section.get(GRPC_STATUS) {
        Some(v) => match Code::parse_strict(v.as_bytes()) {
            Some(code) => return code,
            None => "the upstream sent a grpc-status that is not a status code",
        },
        None => "the upstream ended the call without a grpc-status",
    };
    section.insert(GRPC_STATUS, Code::Unknown.header_value());
    section.insert(GRPC_MESSAGE, HeaderValue::from_static(why));
    Code::Unknown
}

/// Most hours a `grpc-timeout` may say (8 digits of hours is over 11,000 years: the parser
/// caps it instead of overflowing).
const MAX_TIMEOUT: Duration = Duration::from_secs(100_000_000 * 3600);

/// Parses `grpc-timeout`: 1 to 8 ASCII digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
/// None for anything else: gRPC servers then treat the call as having no deadline.
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let d = match unit {
        b'H' => Duration::from_secs(n.saturating_mul(3600)),
        b'M' => Duration::from_secs(n.saturating_mul(60)),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    };
    Some(d.min(MAX_TIMEOUT))
}

/// The `/package.Service/Method` parts of a gRPC request path: None when the path is not of
/// that shape (then the call is recorded under `_OTHER`).
pub fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    (ok(service) && ok(method)).then_some((service, method))
}

/// The headers of a trailers-only answer (or the trailers ending a response) with `code` and
/// `message`, the message percent-encoded as gRPC requires.
pub fn status_headers(code: Code, message: &str, trailers_only: bool) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(3);
    if trailers_only {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    }
    h.insert(GRPC_STATUS, code.header_value());
    if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
        h.insert(GRPC_MESSAGE, v);
    }
    h
}

/// `grpc-message` encoding: printable ASCII except `%` as is, every other byte as `%XX`.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The gRPC message of a `grpc.health.v1.HealthCheckRequest` for `service` ("" is the whole
/// server), framed: no compression, 4-byte big-endian length, then the protobuf message.
pub fn health_check_request(service: &str) -> bytes::Bytes {
    let mut message = Vec::with_capacity(service.len() + 2);
    if !service.is_empty() {
        prost::encoding::string::encode(1, &service.to_string(), &mut message);
    }
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed.into()
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus` names, by number.
pub fn serving_status_name(status: u64) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "an unknown status",
    }
}

/// The `status` of one framed `grpc.health.v1.HealthCheckResponse` (0 when the field is
/// absent, as protobuf defaults it); an error for anything that is not one such message.
pub fn parse_health_response(body: &[u8]) -> Result<u64, String> {
    use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
    let [compressed, l0, l1, l2, l3, rest @ ..] = body else {
        return Err(format!("expected a gRPC message, got {} bytes", body.len()));
    };
    if *compressed != 0 {
        return Err("the health answer is compressed, which was not asked for".into());
    }
    let len = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
    if rest.len() != len {
        return Err(format!("the message says {len} bytes, {} came", rest.len()));
    }
    let mut buf = rest;
    let mut status = 0;
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(|e| format!("malformed health answer: {e}"))?;
        if tag == 1 && wire == WireType::Varint {
            status = decode_varint(&mut buf).map_err(|e| format!("malformed health answer: {e}"))?;
        } else {
            skip_field(wire, tag, &mut buf, DecodeContext::default())
                .map_err(|e| format!("malformed health answer: {e}"))?;
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grpc_status_values_parse_to_codes_and_the_rest_is_unknown() {
        assert_eq!(Code::parse(b"0"), Code::Ok);
        assert_eq!(Code::parse(b"5"), Code::NotFound);
        assert_eq!(Code::parse(b"14"), Code::Unavailable);
        assert_eq!(Code::parse(b"16"), Code::Unauthenticated);
        for bad in [&b""[..], b"17", b"99", b"-1", b"05", b" 5", b"ok", b"1x", b"100", b"\xff"] {
            assert_eq!(Code::parse(bad), Code::Unknown, "{bad:?}");
        }
        for code in CODES {
            assert_eq!(Code::parse(code.header_value().as_bytes()), code);
            assert_eq!(Code::from_u8(code as u8), Some(code));
        }
    }

    #[test]
    fn http_statuses_map_as_grpc_specifies() {
        assert_eq!(Code::from_http_status(400), Code::Internal);
        assert_eq!(Code::from_http_status(401), Code::Unauthenticated);
        assert_eq!(Code::from_http_status(403), Code::PermissionDenied);
        assert_eq!(Code::from_http_status(404), Code::Unimplemented);
        for s in [429, 502, 503, 504] {
            assert_eq!(Code::from_http_status(s), Code::Unavailable);
        }
        assert_eq!(Code::from_http_status(500), Code::Unknown);
        assert_eq!(Code::from_http_status(418), Code::Unknown);
    }

    #[test]
    fn only_the_server_error_codes_are_errors() {
        let errors: Vec<&str> = CODES.iter().filter(|c| c.is_server_error()).map(|c| c.name()).collect();
        assert_eq!(errors, ["UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"]);
    }

    #[test]
    fn ending_sections_are_made_well_formed() {
        let mut h = HeaderMap::new();
        h.insert(GRPC_STATUS, HeaderValue::from_static("5"));
        assert_eq!(checked_status(&mut h), Code::NotFound);
        assert_eq!(h[GRPC_STATUS], "5");
        for bad in ["abc", "05", "17", ""] {
            let mut h = HeaderMap::new();
            h.insert(GRPC_STATUS, HeaderValue::from_static(bad));
            assert_eq!(checked_status(&mut h), Code::Unknown);
            assert_eq!(
                (&h[GRPC_STATUS], h.contains_key(GRPC_MESSAGE)),
                (&HeaderValue::from_static("2"), true),
                "{bad:?}"
            );
        }
        let mut h = HeaderMap::new();
        assert_eq!(checked_status(&mut h), Code::Unknown);
        assert_eq!(h[GRPC_STATUS], "2");
    }

    #[test]
    fn grpc_content_types() {
        let is = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            is_grpc(&h)
        };
        assert!(is("application/grpc"));
        assert!(is("application/grpc+proto"));
        assert!(is("Application/GRPC+json"));
        assert!(is("application/grpc;charset=utf-8"));
        assert!(!is("application/grpc-web"), "gRPC-Web is HTTP/1.1-framed: not handled as gRPC");
        assert!(!is("application/json"));
        assert!(!is("application/grp"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn heads_and_trailers_carry_the_status() {
        let mut h = HeaderMap::new();
        assert_eq!(status_of_head(200, &h), None);
        assert_eq!(status_of_head(503, &h), Some(Code::Unavailable));
        h.insert(GRPC_STATUS, HeaderValue::from_static("5"));
        assert_eq!(status_of_head(200, &h), Some(Code::NotFound));
        assert_eq!(status_of_trailers(&h), Some(Code::NotFound));
        h.insert(GRPC_STATUS, HeaderValue::from_static("not-a-number"));
        assert_eq!(status_of_trailers(&h), Some(Code::Unknown));
    }

    #[test]
    fn timeouts_parse_with_every_unit_and_refuse_the_rest() {
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout(b"99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse_timeout(b"5n"), Some(Duration::from_nanos(5)));
        assert_eq!(parse_timeout(b"99999999H"), Some(Duration::from_secs(99_999_999 * 3600)));
        for bad in [&b""[..], b"S", b"123456789S", b"10", b"10s", b"-1S", b"1.5S", b" 1S", b"1 S", b"\xffS"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(service_and_method("/helloworld.Greeter/SayHello"), Some(("helloworld.Greeter", "SayHello")));
        assert_eq!(service_and_method("/grpc.health.v1.Health/Check"), Some(("grpc.health.v1.Health", "Check")));
        for bad in ["/", "/svc", "/svc/", "//m", "/a/b/c", "svc/m", "/a b/m", "/svc/m?x=1"] {
            assert_eq!(service_and_method(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_headers_percent_encode_the_message() {
        let h = status_headers(Code::Unavailable, "upstream refused: 100% down\n", true);
        assert_eq!(h[GRPC_STATUS], "14");
        assert_eq!(h[GRPC_MESSAGE], "upstream refused: 100%25 down%0A");
        assert_eq!(h[header::CONTENT_TYPE], "application/grpc");
        assert!(!status_headers(Code::Ok, "", false).contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn health_messages_encode_and_decode() {
        assert_eq!(&health_check_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(&health_check_request("a.B")[..], &[0, 0, 0, 0, 5, 0x0a, 3, b'a', b'.', b'B']);
        assert_eq!(parse_health_response(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(parse_health_response(&[0, 0, 0, 0, 0]), Ok(0), "an absent status is UNKNOWN (0)");
        assert_eq!(parse_health_response(&[0, 0, 0, 0, 4, 0x12, 0, 0x08, 2]), Ok(2), "unknown fields are skipped");
        assert!(parse_health_response(&[0, 0, 0]).is_err());
        assert!(parse_health_response(&[1, 0, 0, 0, 2, 0x08, 1]).is_err());
        assert!(parse_health_response(&[0, 0, 0, 0, 9, 0x08, 1]).is_err());
        assert!(parse_health_response(&[0, 0, 0, 0, 2, 0x08, 0xff]).is_err());
        assert_eq!(serving_status_name(1), "SERVING");
    }

    proptest! {
        #[test]
        fn any_status_bytes_give_a_code_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..6)) {
            let code = Code::parse(&bytes);
            let canonical = code.header_value();
            prop_assert!(code == Code::Unknown || canonical.as_bytes() == bytes.as_slice());
        }

        #[test]
        fn any_timeout_bytes_parse_or_refuse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            if let Some(d) = parse_timeout(&bytes) {
                prop_assert!(d <= MAX_TIMEOUT);
                prop_assert!(bytes.len() >= 2 && bytes.len() <= 9);
            }
        }

        #[test]
        fn timeouts_round_trip(n in 0u64..100_000_000, unit in prop::sample::select(vec![b'S', b'm', b'u', b'n'])) {
            let text = format!("{n}{}", unit as char);
            let d = parse_timeout(text.as_bytes());
            let expected = match unit {
                b'S' => Duration::from_secs(n),
                b'm' => Duration::from_millis(n),
                b'u' => Duration::from_micros(n),
                _ => Duration::from_nanos(n),
            };
            prop_assert_eq!(d, Some(expected));
        }

        #[test]
        fn any_health_answer_parses_or_errs_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_health_response(&bytes);
        }
    }
}
