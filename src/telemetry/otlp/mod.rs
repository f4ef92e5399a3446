//! OTLP trace export without the OpenTelemetry SDK: batches of finished spans are encoded
//! straight into protobuf bytes and sent to the collector over OTLP/HTTP or OTLP/gRPC.

mod encode;
mod transport;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use http::uri::PathAndQuery;

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

/// One request's SERVER span as recorded on the hot path: plain data, converted off it.
pub struct FinishedSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub method: http::Method,
    pub route: Arc<str>,
    pub path: Option<PathAndQuery>,
    pub version: http::Version,
    pub host: Option<HeaderValue>,
    pub status: u16,
    /// `error.type` when the request failed (5xx status code or a proxy error name).
    pub error_type: Option<Cow<'static, str>>,
    /// The failure is the service's (span status Error), not the client's or the shutdown's.
    pub service_error: bool,
    pub start: SystemTime,
    pub duration: Duration,
    pub client_ip: HeaderValue,
    pub user_agent: Option<HeaderValue>,
    pub request_body_size: u64,
    pub response_body_size: u64,
    /// For a gRPC call: its method and status (the span then follows the RPC conventions).
    pub rpc: Option<Box<SpanRpc>>,
}

/// The RPC side of a gRPC call's span.
pub struct SpanRpc {
    /// `package.Service/Method` from the request path; None when the path is not of that shape.
    pub method: Option<Box<str>>,
    pub code: crate::grpc::Code,
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

/// Encodes and sends batches; one per export task, reusing its encoder across batches.
pub struct Exporter {
    encoder: RequestEncoder,
    transport: Transport,
    /// The size of the last request body: the next one's buffer starts that large, so that
    /// it rarely grows (a growth copies everything written so far).
    last_len: usize,
}

impl Exporter {
    pub fn new(settings: &ExportSettings) -> Result<Exporter, String> {
        Ok(Exporter {
            encoder: RequestEncoder::new(&settings.resource),
            transport: Transport::new(&settings.endpoint, settings.protocol, &settings.tls)?,
            last_len: 0,
        })
    }

    /// Sends one batch; Ok once the collector accepted it.
    pub async fn export(&mut self, batch: &[FinishedSpan]) -> Result<(), String> {
        let body = self.encode(batch)?;
        self.transport.send(body).await
    }

    /// The request body. Each batch gets a fresh buffer that hyper takes over without a copy
    /// (`Bytes::from` a `Vec`); hyper may still hold the previous one while it is sent.
    fn encode(&mut self, batch: &[FinishedSpan]) -> Result<Bytes, String> {
        let buf = Vec::with_capacity(self.last_len + self.last_len / 8 + 1024);
        let body = match self.transport.protocol() {
            OtlpProtocol::Http => {
                let out = self.encoder.encode(batch, buf, 0);
                Bytes::from(out.buf).slice(out.start..)
            }
            OtlpProtocol::Grpc => {
                // The length is known only after encoding: the encoder leaves room for the
                // prefix (a zero compression flag), filled in here.
                let mut out = self.encoder.encode(batch, buf, GRPC_PREFIX_LEN);
                let len = u32::try_from(out.buf.len() - out.start - GRPC_PREFIX_LEN)
                    .map_err(|_| format!("a batch of {} spans exceeds gRPC's 4 GiB message limit", batch.len()))?;
                out.buf[out.start + 1..out.start + GRPC_PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
                Bytes::from(out.buf).slice(out.start..)
            }
        };
        self.last_len = body.len();
        Ok(body)
    }
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

    fn span() -> FinishedSpan {
        FinishedSpan {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: None,
            method: http::Method::POST,
            route: "/orders".into(),
            path: None,
            version: http::Version::HTTP_2,
            host: None,
            status: 201,
            error_type: None,
            service_error: false,
            start: std::time::SystemTime::now(),
            duration: Duration::from_micros(250),
            client_ip: http::HeaderValue::from_static("::1"),
            user_agent: None,
            request_body_size: 3,
            response_body_size: 0,
            rpc: None,
        }
    }

    #[tokio::test]
    async fn grpc_bodies_carry_the_length_prefix_and_http_bodies_do_not() {
        let batch = [span(), span()];
        let mut http = Exporter::new(&settings(OtlpProtocol::Http)).expect("exporter");
        let plain = http.encode(&batch).expect("encoded");
        let req = ExportTraceServiceRequest::decode(plain.clone()).expect("protobuf");
        assert_eq!(req.resource_spans[0].scope_spans[0].spans.len(), 2);

        let mut grpc = Exporter::new(&settings(OtlpProtocol::Grpc)).expect("exporter");
        for _ in 0..2 {
            let framed = grpc.encode(&batch).expect("encoded");
            assert_eq!(framed[0], 0, "not compressed");
            assert_eq!(u32::from_be_bytes([framed[1], framed[2], framed[3], framed[4]]) as usize, plain.len());
            assert_eq!(framed[GRPC_PREFIX_LEN..], plain[..]);
        }
    }
}
