//! OTLP trace export without the OpenTelemetry SDK: batches of finished spans are encoded
//! straight into protobuf bytes and sent to the collector over OTLP/HTTP or OTLP/gRPC.

mod encode;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::telemetry::chunk_pool::ChunkPool;
use crate::tls::ClientTlsFiles;

use encode::RequestEncoder;
use transport::{GRPC_PREFIX_LEN, Transport};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP over HTTP with protobuf bodies (port 4318).
    Http,
    /// OTLP over gRPC (port 4317).
    Grpc,
}

/// One request's SERVER span as the proxy sees it when the request ends: borrowed from the
/// request's own state, and encoded at once ([`EncodedSpans::push`]) rather than kept.
#[derive(Clone)]
pub struct FinishedSpan<'a> {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub method: &'a http::Method,
    pub route: &'a str,
    /// The request's path without its query; None when there was none to read.
    pub path: Option<&'a str>,
    pub version: http::Version,
    /// The Host (or `:authority`) as the client sent it.
    pub host: Option<&'a [u8]>,
    pub status: u16,
    /// `error.type` when the request failed (5xx status code or a proxy error name).
    pub error_type: Option<&'a str>,
    /// The failure is the service's (span status Error), not the client's or the shutdown's.
    pub service_error: bool,
    pub start: crate::telemetry::wall_clock::UnixNanos,
    pub duration: Duration,
    pub client_ip: &'a [u8],
    pub user_agent: Option<&'a [u8]>,
    pub request_body_size: u64,
    pub response_body_size: u64,
    /// For a gRPC call: its method and status (the span then follows the RPC conventions).
    pub rpc: Option<SpanRpc<'a>>,
}

/// The RPC side of a gRPC call's span.
#[derive(Clone, Copy)]
pub struct SpanRpc<'a> {
    /// `package.Service/Method` from the request path; None when the path is not of that shape.
    pub method: Option<&'a str>,
    pub code: crate::grpc::Code,
}

/// Spans encoded as the `ScopeSpans.spans` fields of a request, ready to be sent as they are.
/// The proxy encodes each span into one of these when its request ends, on its own thread:
/// the exporter then only frames and sends bytes, and nothing of the request outlives it.
#[derive(Default)]
pub struct EncodedSpans {
    bytes: Vec<u8>,
    count: usize,
    /// Where the buffer goes once it is sent, for a worker's next chunk.
    pool: Option<Arc<ChunkPool>>,
}

impl EncodedSpans {
    pub fn with_capacity(bytes: usize) -> EncodedSpans {
        EncodedSpans { bytes: Vec::with_capacity(bytes), count: 0, pool: None }
    }

    /// An empty chunk in a buffer from `pool`, given back to it once the chunk is sent.
    pub fn from_pool(pool: &Arc<ChunkPool>) -> EncodedSpans {
        EncodedSpans { bytes: pool.take(), count: 0, pool: Some(pool.clone()) }
    }

    pub fn push(&mut self, span: &FinishedSpan<'_>) {
        encode::put_framed_span(&mut self.bytes, span);
        self.count += 1;
    }

    /// How many spans.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many bytes they take.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    fn into_bytes(self) -> Bytes {
        match &self.pool {
            Some(pool) => ChunkPool::bytes(pool, self.bytes),
            None => Bytes::from(self.bytes),
        }
    }
}

/// A request body sent as the parts it was built of (the request's head, then each chunk of
/// spans as the workers encoded it), with its exact length for `Content-Length`: joining them
/// into one buffer was most of the exporter's remaining work (a copy of every span).
pub struct Frames {
    parts: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl Frames {
    fn new(parts: impl IntoIterator<Item = Bytes>) -> Frames {
        let parts: std::collections::VecDeque<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let remaining = parts.iter().map(|p| p.len() as u64).sum();
        Frames { parts, remaining }
    }
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let part = self.parts.pop_front();
        if let Some(p) = &part {
            self.remaining -= p.len() as u64;
        }
        std::task::Poll::Ready(part.map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// Where to send spans and how much to buffer.
#[derive(Clone, Debug)]
pub struct ExportSettings {
    /// Base URL such as `http://jaeger:4318` (HTTP) or `http://jaeger:4317` (gRPC).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub resource: Vec<(String, String)>,
    pub queue_size: usize,
    pub batch_size: usize,
    pub batch_interval: Duration,
    pub export_timeout: Duration,
    /// For an https endpoint: extra CA and client identity on top of the platform's roots.
    pub tls: ClientTlsFiles,
}

/// The OTLP/HTTP traces URL for a base endpoint (adds `/v1/traces` unless present).
pub fn http_traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") }
}

/// Frames and sends batches; one per export task.
pub struct Exporter {
    encoder: RequestEncoder,
    transport: Transport,
}

impl Exporter {
    pub fn new(settings: &ExportSettings) -> Result<Exporter, String> {
        Ok(Exporter {
            encoder: RequestEncoder::new(&settings.resource),
            transport: Transport::new(&settings.endpoint, settings.protocol, &settings.tls)?,
        })
    }

    /// Sends one batch; Ok once the collector accepted it.
    pub async fn export(&mut self, batch: Vec<EncodedSpans>) -> Result<(), String> {
        let body = self.body(batch)?;
        self.transport.send(body).await
    }

    /// The request body: the head the encoder builds for the spans' length, then the spans.
    fn body(&mut self, batch: Vec<EncodedSpans>) -> Result<Frames, String> {
        let spans_len: usize = batch.iter().map(EncodedSpans::bytes).sum();
        let head = match self.transport.protocol() {
            OtlpProtocol::Http => self.encoder.head(spans_len, 0),
            OtlpProtocol::Grpc => {
                // The message prefix: a zero compression flag and the big-endian length.
                let mut head = self.encoder.head(spans_len, GRPC_PREFIX_LEN);
                let len = u32::try_from(head.len() - GRPC_PREFIX_LEN + spans_len)
                    .map_err(|_| format!("a batch of {} spans exceeds gRPC's 4 GiB message limit", spans(&batch)))?;
                head[1..GRPC_PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
                head
            }
        };
        Ok(Frames::new(std::iter::once(Bytes::from(head)).chain(batch.into_iter().map(EncodedSpans::into_bytes))))
    }
}

/// How many spans a batch holds.
pub fn spans(batch: &[EncodedSpans]) -> usize {
    batch.iter().map(EncodedSpans::len).sum()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    use super::*;

    fn settings(protocol: OtlpProtocol) -> ExportSettings {
        ExportSettings {
            endpoint: "http://127.0.0.1:4317".into(),
            protocol,
            resource: vec![("service.name".into(), "checkout".into())],
            queue_size: 8,
            batch_size: 8,
            batch_interval: Duration::from_secs(1),
            export_timeout: Duration::from_secs(1),
            tls: Default::default(),
        }
    }

    fn span() -> FinishedSpan<'static> {
        FinishedSpan {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: None,
            method: &http::Method::POST,
            route: "/orders",
            path: None,
            version: http::Version::HTTP_2,
            host: None,
            status: 201,
            error_type: None,
            service_error: false,
            start: crate::telemetry::wall_clock::UnixNanos(1_700_000_000_000_000_000),
            duration: Duration::from_micros(250),
            client_ip: b"::1",
            user_agent: None,
            request_body_size: 3,
            response_body_size: 0,
            rpc: None,
        }
    }

    fn batch() -> Vec<EncodedSpans> {
        let mut batch = vec![EncodedSpans::default(), EncodedSpans::default()];
        batch[0].push(&span());
        batch[1].push(&span());
        batch[1].push(&span());
        batch
    }

    async fn body(exporter: &mut Exporter, batch: Vec<EncodedSpans>) -> Bytes {
        use http_body::Body as _;
        use http_body_util::BodyExt as _;
        let body = exporter.body(batch).expect("framed");
        let announced = body.size_hint().exact();
        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        assert_eq!(announced, Some(bytes.len() as u64), "the exact length is announced");
        bytes
    }

    #[tokio::test]
    async fn sent_chunks_give_their_buffers_back_and_a_reused_one_holds_only_its_spans() {
        let pool = Arc::new(ChunkPool::new(4, 4096));
        let mut exporter = Exporter::new(&settings(OtlpProtocol::Http)).expect("exporter");
        for round in 0..2 {
            let mut batch = vec![EncodedSpans::from_pool(&pool), EncodedSpans::from_pool(&pool)];
            batch[0].push(&span());
            batch[1].push(&span());
            let sent = body(&mut exporter, batch).await;
            let req = ExportTraceServiceRequest::decode(sent).expect("protobuf");
            assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 2, "round {round}");
            assert_eq!(pool.spares(), 2, "round {round}: both buffers are back once the body is dropped");
        }
    }

    #[tokio::test]
    async fn grpc_bodies_carry_the_length_prefix_and_http_bodies_do_not() {
        let mut http = Exporter::new(&settings(OtlpProtocol::Http)).expect("exporter");
        let plain = body(&mut http, batch()).await;
        let req = ExportTraceServiceRequest::decode(plain.clone()).expect("protobuf");
        assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 3, "every span of every chunk");

        let mut grpc = Exporter::new(&settings(OtlpProtocol::Grpc)).expect("exporter");
        for _ in 0..2 {
            let framed = body(&mut grpc, batch()).await;
            assert_eq!(framed[0], 0, "not compressed");
            assert_eq!(u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize, plain.len());
            assert_eq!(framed[GRPC_PREFIX_LEN..], plain[..]);
        }
    }
}
