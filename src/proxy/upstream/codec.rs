//! The HTTP/1.1 wire format of the upstream side, without I/O: request heads written,
//! response heads parsed, and response bodies framed and de-chunked as RFC 9112 section 6 says.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use smallvec::SmallVec;

/// Largest response head accepted from the upstream.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted in a response head.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions) or trailer section accepted.
const MAX_CHUNK_LINE_BYTES: usize = 4 * 1024;

/// How the request body travels on the upstream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body, and none announced.
    None,
    /// No body, announced as `content-length: 0` (methods that normally carry one).
    EmptyLength,
    /// The request's own `content-length` header frames the body.
    Length,
    /// A body of unknown length, sent as `transfer-encoding: chunked`.
    Chunked,
}

impl RequestFraming {
    /// `has_body` is false when the client's body is known to be empty.
    pub fn of(method: &Method, headers: &HeaderMap, has_body: bool) -> Self {
        Self::with_length(method, headers.contains_key(header::CONTENT_LENGTH), has_body)
    }

    /// `has_length`: the request carries a `Content-Length`.
    pub fn with_length(method: &Method, has_length: bool, has_body: bool) -> Self {
        if has_length {
            RequestFraming::Length
        } else if has_body {
            RequestFraming::Chunked
        } else if method == Method::POST || method == Method::PUT || method == Method::PATCH {
            RequestFraming::EmptyLength
        } else {
            RequestFraming::None
        }
    }
}

/// Writes `METHOD target HTTP/1.1`, the headers and the framing header into `out` (cleared first).
/// Header values cannot hold CR or LF (`HeaderValue` refuses them), so nothing can be smuggled in.
pub fn encode_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: RequestFraming,
) {
    encode_request_line(out, method, target);
    for (name, value) in headers {
        encode_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    encode_head_end(out, framing);
}

/// Request fields that write themselves, between the request line and the framing field;
/// none of them may frame the body (`Content-Length`, `Transfer-Encoding`).
pub trait RequestFields {
    fn encode(&self, out: &mut Vec<u8>);
}

/// Clears `out` and writes `METHOD target HTTP/1.1`.
pub fn encode_request_line(out: &mut Vec<u8>, method: &Method, target: &str) {
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// Writes `name: value`. The caller's bytes are a parser's (httparse's, or a `HeaderValue`'s):
/// no CR or LF.
pub fn encode_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes fields of `head` (name and value ranges) as [`encode_field`] does, one after the
/// other. Where `head` already holds a field in exactly that form (`name: value` CRLF) right
/// behind the previous one, the two go on as one run of its bytes: the usual head (nginx's,
/// most clients') is copied in one piece in place of four appends per field. Property-tested
/// against writing every field on its own (`codec_props.rs`, `raw_request_props.rs`).
pub fn encode_fields_from(out: &mut Vec<u8>, head: &[u8], fields: impl IntoIterator<Item = [u32; 4]>) {
    // The run of head bytes not yet written.
    let mut run = 0..0;
    for [n0, n1, v0, v1] in fields {
        let (n0, n1, v0, v1) = (n0 as usize, n1 as usize, v0 as usize, v1 as usize);
        let as_written = v0 == n1 + 2 && head.get(n1..v0) == Some(b": ") && head.get(v1..v1 + 2) == Some(b"\r\n");
        if as_written && n0 == run.end && !run.is_empty() {
            run.end = v1 + 2;
            continue;
        }
        out.extend_from_slice(&head[run]);
        if as_written {
            run = n0..v1 + 2;
        } else {
            run = 0..0;
            encode_field(out, &head[n0..n1], &head[v0..v1]);
        }
    }
    out.extend_from_slice(&head[run]);
}

/// Writes the framing field, if any, and the blank line that ends the head.
pub fn encode_head_end(out: &mut Vec<u8>, framing: RequestFraming) {
    match framing {
        RequestFraming::EmptyLength => out.extend_from_slice(b"content-length: 0\r\n"),
        RequestFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        RequestFraming::None | RequestFraming::Length => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// The chunk-size line that goes before `len` bytes of a chunked request body.
pub fn chunk_header(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

/// The last chunk of a chunked request body, with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The last chunk of a chunked request body with its trailer section; the fields a trailer
/// must not carry (framing, routing, hop-by-hop: RFC 9110 section 6.5.1) are left out.
pub fn last_chunk_with_trailers(trailers: &HeaderMap) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        if allowed_in_trailers(name) {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out.into()
}

/// Whether a field may travel in a trailer section: not one that frames the message, routes
/// it, or concerns one connection only.
pub fn allowed_in_trailers(name: &HeaderName) -> bool {
    !(*name == header::TRANSFER_ENCODING
        || *name == header::CONTENT_LENGTH
        || *name == header::HOST
        || *name == header::CONNECTION
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::UPGRADE
        || *name == header::CONTENT_TYPE
        || *name == header::CONTENT_ENCODING
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection")
}

/// Why a response from the upstream is not HTTP/1.x the proxy can forward.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("invalid response head: {0}")]
    Head(httparse::Error),
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("invalid header {0:?} in the response head")]
    Header(String),
    #[error("invalid or conflicting content-length {0:?}")]
    ContentLength(String),
    #[error("101 switching protocols, but no upgrade was asked for")]
    UnexpectedUpgrade,
    #[error("invalid chunk in a chunked response body")]
    Chunk,
    #[error("invalid trailer section in a chunked response body")]
    Trailers,
}

/// How the upstream's response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: HEAD requests, 1xx, 204 and 304.
    Empty,
    Length(u64),
    Chunked,
    /// Ends when the upstream closes the connection.
    UntilClose,
}

/// A complete final response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    /// The end-to-end fields: the hop-by-hop ones (RFC 9110 section 7.6.1, with any that
    /// `Connection` names, and `Transfer-Encoding`) concern this connection only and are not kept.
    pub headers: HeaderMap,
    /// The same fields as the upstream wrote them, in place of `headers` (left empty), when
    /// they were asked for raw.
    pub raw: Option<Box<RawFields>>,
    pub framing: BodyFraming,
    /// Whether the connection may carry another request once this body is read.
    pub keep_alive: bool,
}

/// Kept fields a raw form holds without a further allocation (nginx answers with four or five).
const INLINE_FIELDS: usize = 8;
type KeptFields = SmallVec<[[u32; 4]; INLINE_FIELDS]>;

/// A response head's end-to-end fields as the upstream wrote them (names in its case), for a
/// client connection that writes them on as they are: the fields a `HeaderMap` would hold, in
/// the same order, without building one (a sixteenth of a proxied request's instructions).
#[derive(Debug)]
pub struct RawFields {
    head: Bytes,
    /// Name and value ranges of each kept field, in `head`: inline up to `INLINE_FIELDS`, so
    /// that a response's raw fields are one allocation, not two.
    fields: KeptFields,
    /// A `Content-Length` is among them.
    pub has_length: bool,
    /// A `Date` is among them.
    pub has_date: bool,
}

impl RawFields {
    /// The fields, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|&[n0, n1, v0, v1]| (&self.head[n0 as usize..n1 as usize], &self.head[v0 as usize..v1 as usize]))
    }

    /// Writes the fields as `name: value` lines, leaving out `Content-Length` when
    /// `without_length` (a 1xx or 204 response carries none), through [`encode_fields_from`]:
    /// nginx's and most servers' heads go on in one copy.
    pub fn encode(&self, out: &mut Vec<u8>, without_length: bool) {
        let head = &self.head;
        let kept = self.fields.iter().copied().filter(|&[n0, n1, ..]| {
            !(without_length && RawFields::is(&head[n0 as usize..n1 as usize], "content-length"))
        });
        encode_fields_from(out, head, kept);
    }

    /// Whether a field is `name` (lowercase).
    pub fn is(name: &[u8], lowercase: &str) -> bool {
        name.len() == lowercase.len() && name.eq_ignore_ascii_case(lowercase.as_bytes())
    }
}

/// The fields whose names decide the framing or the connection, told apart by their bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    /// `TE`, `Proxy-Authenticate`, `Keep-Alive`, `Proxy-Connection`: hop-by-hop, nothing more.
    OtherHop,
    Date,
    EndToEnd,
}

impl Field {
    fn of(name: &[u8]) -> Field {
        let is = |lowercase: &[u8]| crate::proxy::field_name::eq_lowercase(name, lowercase);
        // Lengths first: most names are ruled out by it alone.
        match name.len() {
            2 if is(b"te") => Field::OtherHop,
            4 if is(b"date") => Field::Date,
            7 if is(b"upgrade") => Field::Upgrade,
            10 if is(b"connection") => Field::Connection,
            10 if is(b"keep-alive") => Field::OtherHop,
            14 if is(b"content-length") => Field::ContentLength,
            16 if is(b"proxy-connection") => Field::OtherHop,
            17 if is(b"transfer-encoding") => Field::TransferEncoding,
            18 if is(b"proxy-authenticate") => Field::OtherHop,
            _ => Field::EndToEnd,
        }
    }
}

/// Parses the response head at the start of `buf`, skipping interim (1xx) responses, and splits
/// it off. `Ok(None)` means more bytes are needed. Header values share the bytes read.
/// A `101 Switching Protocols` is final only when the request asked for an upgrade
/// (`upgrading`); it then keeps its `Upgrade` field, with `Connection: upgrade`.
pub fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
    upgrading: bool,
) -> Result<Option<ResponseHead>, ProtocolError> {
    parse_response_head_as(buf, method, upgrading, false)
}

/// [`parse_response_head`], with the end-to-end fields left as the upstream wrote them
/// ([`ResponseHead::raw`]) when `raw` is set and the request is no upgrade.
pub fn parse_response_head_as(
    buf: &mut BytesMut,
    method: &Method,
    upgrading: bool,
    raw: bool,
) -> Result<Option<ResponseHead>, ProtocolError> {
    let raw = raw && !upgrading;
    loop {
        let mut hop = HopByHop::default();
        let (mut has_date, mut has_length) = (false, false);
        // The end-to-end fields, as offsets into the head, sorted out in the parse's own pass.
        let mut kept = KeptFields::new();
        let (len, code, minor) = {
            let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut []);
            let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut parsed,
                buf,
                &mut storage,
            ) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
                    return Err(ProtocolError::HeadTooLarge);
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => return Err(ProtocolError::Head(e)),
            };
            let code = parsed.code.unwrap_or(0);
            // An interim response's fields are not read: the final one's follow.
            let interim = (100..200).contains(&code) && !(code == 101 && upgrading);
            if !interim {
                let base = buf.as_ptr() as usize;
                kept.reserve_exact(parsed.headers.len());
                for h in parsed.headers.iter() {
                    let field = Field::of(h.name.as_bytes());
                    if hop.take(field, h.value)? {
                        continue;
                    }
                    has_date |= field == Field::Date;
                    has_length |= field == Field::ContentLength;
                    // Offsets into `buf`, so that the values can be sliced out of it once it is
                    // frozen.
                    let name = h.name.as_ptr() as usize - base;
                    let value = h.value.as_ptr() as usize - base;
                    kept.push([
                        name as u32,
                        (name + h.name.len()) as u32,
                        value as u32,
                        (value + h.value.len()) as u32,
                    ]);
                }
            }
            (len, code, parsed.version.unwrap_or(1))
        };
        let head = buf.split_to(len).freeze();
        let switching = code == 101 && upgrading;
        if (100..200).contains(&code) && !switching {
            if code == 101 {
                return Err(ProtocolError::UnexpectedUpgrade);
            }
            continue; // 100 Continue, 103 Early Hints: the final response follows.
        }
        let status = StatusCode::from_u16(code).map_err(|_| ProtocolError::Head(httparse::Error::Status))?;
        let version = if minor == 0 { Version::HTTP_10 } else { Version::HTTP_11 };
        let mut headers = HeaderMap::new();
        if !raw {
            headers.reserve(kept.len());
            for &[n0, n1, v0, v1] in &kept {
                let raw_name = &head[n0 as usize..n1 as usize];
                let name = HeaderName::from_bytes(raw_name)
                    .map_err(|_| ProtocolError::Header(String::from_utf8_lossy(raw_name).into_owned()))?;
                let value = HeaderValue::from_maybe_shared(head.slice(v0 as usize..v1 as usize))
                    .map_err(|_| ProtocolError::Header(name.to_string()))?;
                headers.append(name, value);
            }
        }
        for name in &hop.listed {
            headers.remove(name);
        }
        if hop.transfer_encoding {
            // The body goes on de-chunked; a length beside the chunking would misframe it.
            headers.remove(header::CONTENT_LENGTH);
        }
        // The head is moved into the raw fields, not shared: a shared handle is an atomic
        // count taken and given back on every response.
        let raw = if raw {
            // Rare: fields named in `Connection`, or a length beside chunking, go now.
            if !hop.listed.is_empty() || hop.transfer_encoding {
                kept.retain(|&mut [n0, n1, ..]| {
                    let name = &head[n0 as usize..n1 as usize];
                    !(hop.listed.iter().any(|l| RawFields::is(name, l.as_str()))
                        || hop.transfer_encoding && Field::of(name) == Field::ContentLength)
                });
                let kept_is = |f| kept.iter().any(|&[n0, n1, ..]| Field::of(&head[n0 as usize..n1 as usize]) == f);
                (has_length, has_date) = (kept_is(Field::ContentLength), kept_is(Field::Date));
            }
            Some(Box::new(RawFields { head, fields: kept, has_length, has_date }))
        } else {
            None
        };
        if switching {
            // The connection now carries the new protocol: it is the client's, never reused.
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(protocol) = hop.upgrade {
                headers.insert(header::UPGRADE, protocol);
            }
            return Ok(Some(ResponseHead {
                status,
                version,
                headers,
                raw,
                framing: BodyFraming::Empty,
                keep_alive: false,
            }));
        }
        let (framing, framing_reusable) = hop.framing(method, status);
        // Transfer-Encoding in an HTTP/1.0 response: the connection must close after it
        // (RFC 9112 section 6.1), whatever `Connection` says.
        let keep_alive = framing_reusable
            && !hop.close
            && (version == Version::HTTP_11 || (hop.keep_alive && !hop.transfer_encoding));
        return Ok(Some(ResponseHead { status, version, headers, raw, framing, keep_alive }));
    }
}

/// What the framing and hop-by-hop fields of a response head say, gathered in one pass.
#[derive(Default)]
struct HopByHop {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked_last: bool,
    close: bool,
    keep_alive: bool,
    /// Further fields `Connection` names as hop-by-hop.
    listed: Vec<HeaderName>,
    /// The `Upgrade` field, kept for a 101 answer to an upgrade request.
    upgrade: Option<HeaderValue>,
}

impl HopByHop {
    /// Notes a framing or hop-by-hop field; true when it is hop-by-hop and must not be forwarded.
    fn take(&mut self, field: Field, value: &[u8]) -> Result<bool, ProtocolError> {
        if field == Field::ContentLength {
            self.content_length(value)?;
            return Ok(false);
        }
        if field == Field::TransferEncoding {
            self.transfer_encoding = true;
            // The last coding applied decides: chunked must be it for the body to be delimited.
            self.chunked_last = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
            return Ok(true);
        }
        if field == Field::Connection {
            // Byte-wise: tokens are ASCII, and a UTF-8 check costs more than the whole split.
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                } else if let Ok(listed) = HeaderName::from_bytes(token) {
                    self.listed.push(listed);
                }
            }
            return Ok(true);
        }
        if field == Field::Upgrade {
            self.upgrade = HeaderValue::from_bytes(value).ok();
            return Ok(true);
        }
        // `Trailer` is end-to-end: it announces the trailer fields to the client.
        Ok(field == Field::OtherHop)
    }

    /// Every `Content-Length` value (and comma-separated part of one) must agree.
    fn content_length(&mut self, value: &[u8]) -> Result<(), ProtocolError> {
        let bad = || ProtocolError::ContentLength(String::from_utf8_lossy(value).into_owned());
        for part in value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if self.content_length.is_some_and(|prior| prior != n) {
                return Err(bad());
            }
            self.content_length = Some(n);
        }
        Ok(())
    }

    /// RFC 9112 section 6.3; the flag says whether the framing leaves the connection reusable.
    fn framing(&self, method: &Method, status: StatusCode) -> (BodyFraming, bool) {
        if method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            return (BodyFraming::Empty, true);
        }
        if self.transfer_encoding {
            // Both headers at once is how responses get smuggled: chunked wins, the connection goes.
            let alone = self.content_length.is_none();
            return if self.chunked_last { (BodyFraming::Chunked, alone) } else { (BodyFraming::UntilClose, false) };
        }
        match self.content_length {
            Some(0) => (BodyFraming::Empty, true),
            Some(n) => (BodyFraming::Length(n), true),
            None => (BodyFraming::UntilClose, false),
        }
    }
}

/// What a chunked body yielded from the bytes buffered so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Data(Bytes),
    /// The trailer section after the last chunk (only when it has fields); `End` follows.
    Trailers(HeaderMap),
    /// The last chunk and the trailer section were read; the connection is at the next response.
    End,
    /// More bytes are needed.
    NeedMore,
}

/// Decodes a chunked body incrementally; trailer fields are handed on, but for those a
/// trailer must not carry.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Default)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

impl ChunkedDecoder {
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Chunk, ProtocolError> {
        loop {
            match self.state {
                ChunkState::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, 0))) => {
                        buf.advance(used);
                        self.state = ChunkState::Trailers;
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        self.state = ChunkState::Data(size);
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_LINE_BYTES => return Ok(Chunk::NeedMore),
                    Ok(httparse::Status::Partial) | Err(_) => return Err(ProtocolError::Chunk),
                },
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Chunk::NeedMore);
                    }
                    let take = left.min(buf.len() as u64);
                    let data = buf.split_to(take as usize).freeze();
                    self.state = if take == left { ChunkState::DataEnd } else { ChunkState::Data(left - take) };
                    return Ok(Chunk::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Chunk::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ProtocolError::Chunk);
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        self.state = ChunkState::Done;
                        continue;
                    }
                    let mut fields = [httparse::EMPTY_HEADER; 32];
                    match httparse::parse_headers(buf, &mut fields) {
                        Ok(httparse::Status::Complete((used, parsed))) => {
                            let mut trailers = HeaderMap::with_capacity(parsed.len());
                            for field in parsed {
                                let name = HeaderName::from_bytes(field.name.as_bytes())
                                    .map_err(|_| ProtocolError::Trailers)?;
                                let value =
                                    HeaderValue::from_bytes(field.value).map_err(|_| ProtocolError::Trailers)?;
                                if allowed_in_trailers(&name) {
                                    trailers.append(name, value);
                                }
                            }
                            buf.advance(used);
                            self.state = ChunkState::Done;
                            if !trailers.is_empty() {
                                return Ok(Chunk::Trailers(trailers));
                            }
                        }
                        Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_LINE_BYTES => {
                            return Ok(Chunk::NeedMore);
                        }
                        Ok(httparse::Status::Partial) | Err(_) => return Err(ProtocolError::Trailers),
                    }
                }
                ChunkState::Done => return Ok(Chunk::End),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(raw: &str, method: &Method) -> Result<Option<ResponseHead>, ProtocolError> {
        parse_response_head(&mut BytesMut::from(raw), method, false)
    }

    fn head(raw: &str) -> ResponseHead {
        head_of(raw, &Method::GET).expect("valid head").expect("complete head")
    }

    #[test]
    fn request_heads_carry_the_headers_and_the_framing_of_the_body() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("app:8080"));
        h.append("x-b", HeaderValue::from_static("1"));
        h.append("x-b", HeaderValue::from_static("2"));
        let mut out = Vec::new();
        let framing = RequestFraming::of(&Method::POST, &h, true);
        assert_eq!(framing, RequestFraming::Chunked);
        encode_request_head(&mut out, &Method::POST, "/orders?id=1", &h, framing);
        assert_eq!(
            String::from_utf8(out.clone()).expect("ascii"),
            "POST /orders?id=1 HTTP/1.1\r\nhost: app:8080\r\nx-b: 1\r\nx-b: 2\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        encode_request_head(
            &mut out,
            &Method::PUT,
            "/",
            &HeaderMap::new(),
            RequestFraming::of(&Method::PUT, &HeaderMap::new(), false),
        );
        assert_eq!(out, b"PUT / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(RequestFraming::of(&Method::GET, &HeaderMap::new(), false), RequestFraming::None);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert_eq!(RequestFraming::of(&Method::POST, &h, true), RequestFraming::Length);
        assert_eq!(&chunk_header(255)[..], b"ff\r\n");
    }

    #[test]
    fn fields_already_written_as_name_colon_space_value_go_on_in_runs_of_the_head() {
        let head = "HTTP/1.1 200 OK\r\nA: 1\r\nB:2\r\nC: 3\r\nD: 4\r\nE:\t5\r\nF: 6 \r\nG: 7\r\n\r\n";
        let h = parse_response_head_as(&mut BytesMut::from(head), &Method::GET, false, true)
            .expect("valid")
            .expect("complete");
        let raw = h.raw.expect("raw fields");
        let mut out = Vec::new();
        raw.encode(&mut out, false);
        // B, E and F are written as fields; the others are runs of the head (C and D one run).
        assert_eq!(String::from_utf8_lossy(&out), "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\n");
        let mut one_by_one = Vec::new();
        for (name, value) in raw.iter() {
            encode_field(&mut one_by_one, name, value);
        }
        assert_eq!(out, one_by_one);
        // One field off the form between two in it: the field is rewritten, its neighbours copied.
        for odd in ["E:\t5", "E:5", "E:  5", "E: 5 "] {
            let head = format!("HTTP/1.1 200 OK\r\nA: 1\r\n{odd}\r\nG: 7\r\n\r\n");
            let h = parse_response_head_as(&mut BytesMut::from(head.as_str()), &Method::GET, false, true)
                .expect("valid")
                .expect("complete");
            let mut out = Vec::new();
            h.raw.expect("raw fields").encode(&mut out, false);
            assert_eq!(out, b"A: 1\r\nE: 5\r\nG: 7\r\n", "{odd:?}");
        }
        // Fields left out break a run; what is on either side goes on.
        let mut out = Vec::new();
        encode_fields_from(&mut out, b"X: 1\r\nY: 2\r\nZ: 3\r\n", [[0, 1, 3, 4], [12, 13, 15, 16]]);
        assert_eq!(out, b"X: 1\r\nZ: 3\r\n");
        let mut out = Vec::new();
        encode_fields_from(&mut out, b"", []);
        assert!(out.is_empty());
        // A bare LF ends a line as CRLF does (RFC 9112 section 2.2): the field is rewritten.
        let h = parse_response_head_as(
            &mut BytesMut::from("HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 0\r\n\r\n"),
            &Method::GET,
            false,
            true,
        )
        .expect("valid")
        .expect("complete");
        let mut out = Vec::new();
        h.raw.expect("raw fields").encode(&mut out, true);
        assert_eq!(out, b"X-A: a\r\n", "and a 1xx or 204 leaves the length out");
    }

    #[test]
    fn a_response_head_is_split_off_and_its_body_framing_found() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-App: a\r\n\r\nhello");
        let h = parse_response_head(&mut buf, &Method::GET, false).expect("valid").expect("complete");
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.framing, BodyFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.headers["x-app"], "a");
        assert_eq!(&buf[..], b"hello", "the body stays in the buffer");
    }

    #[test]
    fn partial_heads_wait_for_more_bytes_and_huge_ones_are_refused() {
        assert!(head_of("HTTP/1.1 200 OK\r\nContent-Le", &Method::GET).expect("valid").is_none());
        let huge = format!("HTTP/1.1 200 OK\r\nx-big: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(head_of(&huge, &Method::GET).unwrap_err(), ProtocolError::HeadTooLarge);
        assert!(matches!(head_of("SSH-2.0-OpenSSH\r\n\r\n", &Method::GET), Err(ProtocolError::Head(_))));
    }

    #[test]
    fn interim_responses_are_skipped_and_upgrades_refused() {
        let h = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(h.status, StatusCode::CREATED);
        assert!(!h.headers.contains_key("link"));
        assert_eq!(
            head_of("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2", &Method::GET).expect("valid").map(|h| h.status),
            None
        );
        assert_eq!(
            head_of("HTTP/1.1 101 Switching Protocols\r\n\r\n", &Method::GET).unwrap_err(),
            ProtocolError::UnexpectedUpgrade
        );
    }

    #[test]
    fn a_101_answering_an_upgrade_request_is_final_and_keeps_its_upgrade_field() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi"[..],
        );
        let h = parse_response_head(&mut buf, &Method::GET, true).expect("valid").expect("complete");
        assert_eq!(h.status, StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(h.headers["upgrade"], "websocket");
        assert_eq!(h.headers["connection"], "upgrade");
        assert_eq!(h.headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Empty, false));
        assert_eq!(&buf[..], b"\x81\x02hi", "the new protocol's first bytes stay in the buffer");
    }

    #[test]
    fn body_framing_follows_rfc_9112() {
        assert_eq!(head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing, BodyFraming::Chunked);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::UntilClose, false));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(
            (h.framing, h.keep_alive),
            (BodyFraming::Chunked, false),
            "smuggling shape: chunked wins, connection dropped"
        );
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::UntilClose, false));
        assert_eq!(head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n").framing, BodyFraming::Length(7));
        assert_eq!(head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").framing, BodyFraming::Empty);
        assert_eq!(head("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").framing, BodyFraming::Empty);
        assert_eq!(head("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n").framing, BodyFraming::Empty);
        let h =
            head_of("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", &Method::HEAD).expect("valid").expect("complete");
        assert_eq!(h.framing, BodyFraming::Empty);
        assert_eq!(h.headers["content-length"], "9", "HEAD keeps the length of what GET would send");
        for bad in ["5, 6", "-1", "", "0x10", "1 2"] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
            assert!(matches!(head_of(&raw, &Method::GET), Err(ProtocolError::ContentLength(_))), "{bad:?}");
        }
        assert!(matches!(
            head_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", &Method::GET),
            Err(ProtocolError::ContentLength(_))
        ));
    }

    #[test]
    fn hop_by_hop_names_are_told_apart_in_any_case_in_both_modes() {
        for name in [
            "TE",
            "te",
            "Upgrade",
            "CONNECTION",
            "Keep-Alive",
            "proxy-connection",
            "Proxy-Authenticate",
            "transfer-ENCODING",
        ] {
            let wire = format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n{name}: x\r\nX-Kept: y\r\n\r\n");
            for raw in [false, true] {
                let head = parse_response_head_as(&mut BytesMut::from(wire.as_str()), &Method::GET, false, raw)
                    .expect("valid")
                    .expect("complete");
                let names: Vec<String> = match &head.raw {
                    Some(f) => f.iter().map(|(n, _)| String::from_utf8_lossy(n).to_ascii_lowercase()).collect(),
                    None => head.headers.keys().map(|n| n.as_str().to_string()).collect(),
                };
                assert!(!names.contains(&name.to_ascii_lowercase()), "{name} forwarded (raw: {raw}): {names:?}");
                assert!(names.contains(&"x-kept".to_string()), "{names:?}");
            }
        }
    }

    #[test]
    fn hop_by_hop_fields_stay_behind() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n\
             Transfer-Encoding: chunked\r\nContent-Length: 3\r\nTrailer: x-sum\r\nUpgrade: h2c\r\nX-App: kept\r\n\r\n",
        );
        let names: Vec<&str> = h.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-app", "trailer"], "Trailer is end-to-end: it announces the trailers");
    }

    #[test]
    fn connection_reuse_follows_version_and_connection_header() {
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n");
        assert_eq!((h.version, h.keep_alive), (Version::HTTP_10, true));
        let h = head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(!h.keep_alive, "chunked in HTTP/1.0 closes the connection");
    }

    fn decode_with_trailers(
        decoder: &mut ChunkedDecoder,
        buf: &mut BytesMut,
        trailers: &mut HeaderMap,
    ) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        loop {
            match decoder.decode(buf).expect("valid chunked body") {
                Chunk::Data(d) => out.extend_from_slice(&d),
                Chunk::Trailers(t) => trailers.extend(t),
                Chunk::End => return (out, true),
                Chunk::NeedMore => return (out, false),
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_across_any_split_with_their_trailers() {
        let wire = b"5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-checksum: 9\r\n\
                     Content-Length: 5\r\ngrpc-status: 0\r\n\r\nHTTP/1.1";
        for split in 0..wire.len() {
            let mut decoder = ChunkedDecoder::default();
            let mut trailers = HeaderMap::new();
            let mut buf = BytesMut::from(&wire[..split]);
            let (mut body, mut ended) = decode_with_trailers(&mut decoder, &mut buf, &mut trailers);
            buf.extend_from_slice(&wire[split..]);
            if !ended {
                let (rest, end) = decode_with_trailers(&mut decoder, &mut buf, &mut trailers);
                body.extend_from_slice(&rest);
                ended = end;
            }
            assert!(ended, "split at {split}");
            assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz", "split at {split}");
            assert_eq!(&buf[..], b"HTTP/1.1", "the next response stays buffered (split at {split})");
            assert_eq!(trailers.len(), 2, "framing fields never travel as trailers: {trailers:?}");
            assert_eq!(
                (&trailers["x-checksum"], &trailers["grpc-status"]),
                (&"9".parse().expect("v"), &"0".parse().expect("v"))
            );
        }
    }

    #[test]
    fn request_trailers_encode_without_forbidden_fields() {
        let mut t = HeaderMap::new();
        t.insert("x-checksum", HeaderValue::from_static("9"));
        t.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert_eq!(&last_chunk_with_trailers(&t)[..], b"0\r\nx-checksum: 9\r\n\r\n");
        assert_eq!(&last_chunk_with_trailers(&HeaderMap::new())[..], LAST_CHUNK);
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        for bad in [&b"zz\r\nhello\r\n"[..], b"5\r\nhelloXX0\r\n\r\n", b"0\r\nbad header\r\n\r\n"] {
            let mut decoder = ChunkedDecoder::default();
            let mut buf = BytesMut::from(bad);
            let result = loop {
                match decoder.decode(&mut buf) {
                    Ok(Chunk::Data(_)) => continue,
                    other => break other,
                }
            };
            assert!(result.is_err(), "{:?} gave {result:?}", String::from_utf8_lossy(bad));
        }
        let mut endless = BytesMut::from(&[b'1'; MAX_CHUNK_LINE_BYTES][..]);
        assert_eq!(ChunkedDecoder::default().decode(&mut endless), Err(ProtocolError::Chunk));
    }
}
#[cfg(test)]
#[path = "codec_props.rs"]
mod props;
