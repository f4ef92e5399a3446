//! Sends an encoded `ExportTraceServiceRequest`: OTLP/HTTP (a protobuf POST) or OTLP/gRPC
//! (HTTP/2 with prior knowledge, one length-prefixed message, the outcome in `grpc-status`).

use http::header::{CONTENT_TYPE, TE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{Frames, OtlpProtocol, http_traces_url};
use crate::errors::with_causes;
use crate::tls::{self, ClientTlsFiles};

/// The gRPC method of opentelemetry/proto/collector/trace/v1/trace_service.proto.
const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A collector's answer is an `ExportTraceServiceResponse` or an error status: small. The cap
/// keeps a misbehaving collector from growing the sidecar's memory.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The 5-byte prefix of a gRPC message: a compression flag (0: none) and the big-endian length.
pub const GRPC_PREFIX_LEN: usize = 5;

pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Frames>,
    uri: Uri,
    protocol: OtlpProtocol,
    user_agent: HeaderValue,
}

impl Transport {
    /// `tls` applies to an https endpoint; an http one is plain TCP (h2c for gRPC).
    pub fn new(endpoint: &str, protocol: OtlpProtocol, tls: &ClientTlsFiles) -> Result<Transport, String> {
        let url = match protocol {
            OtlpProtocol::Http => http_traces_url(endpoint),
            OtlpProtocol::Grpc => format!("{}{GRPC_EXPORT_PATH}", endpoint.trim_end_matches('/')),
        };
        let uri: Uri = url.parse().map_err(|e| format!("{url} is not a valid URL: {e}"))?;
        let mut tcp = HttpConnector::new();
        // Requests are written whole and then waited on: Nagle would only delay them.
        tcp.set_nodelay(true);
        // The https connector needs to see https URLs; it passes http ones through untouched.
        tcp.enforce_http(false);
        let tls_config = if uri.scheme_str() == Some("https") {
            tls::client_config(tls)?
        } else {
            tls::client_config(&ClientTlsFiles::default())?
        };
        let connector = HttpsConnectorBuilder::new().with_tls_config(tls_config).https_or_http();
        let mut builder = Client::builder(TokioExecutor::new());
        let connector = match protocol {
            // OTLP/HTTP: HTTP/1.1, as collectors' OTLP/HTTP receivers all speak it.
            OtlpProtocol::Http => connector.enable_http1().wrap_connector(tcp),
            OtlpProtocol::Grpc => {
                // gRPC needs HTTP/2: negotiated by ALPN over TLS, with prior knowledge (h2c) on
                // plain TCP, which is how collectors serve it without TLS.
                builder.http2_only(true);
                connector.enable_http2().wrap_connector(tcp)
            }
        };
        Ok(Transport {
            client: builder.build(connector),
            uri,
            protocol,
            user_agent: HeaderValue::from_static(concat!("redline/", env!("CARGO_PKG_VERSION"))),
        })
    }

    pub fn protocol(&self) -> OtlpProtocol {
        self.protocol
    }

    /// Sends one request body (for gRPC, already length-prefixed); Ok once the collector
    /// accepted it, else why not.
    pub async fn send(&self, body: Frames) -> Result<(), String> {
        let content_type = match self.protocol {
            OtlpProtocol::Http => "application/x-protobuf",
            OtlpProtocol::Grpc => "application/grpc",
        };
        let mut request = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, content_type)
            .header(USER_AGENT, self.user_agent.clone())
            .body(body)
            .map_err(|e| e.to_string())?;
        if self.protocol == OtlpProtocol::Grpc {
            // Required by gRPC: proxies in between must not drop the trailers with the outcome.
            request.headers_mut().insert(TE, HeaderValue::from_static("trailers"));
        }
        let response = self.client.request(request).await.map_err(|e| with_causes(&e))?;
        let status = response.status();
        match self.protocol {
            OtlpProtocol::Http => {
                // Reading the answer lets HTTP/1.1 reuse the connection; the status decides.
                let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await;
                if status.is_success() { Ok(()) } else { Err(format!("HTTP status {status}")) }
            }
            OtlpProtocol::Grpc => {
                if status != StatusCode::OK {
                    return Err(format!("HTTP status {status}"));
                }
                // A trailers-only answer (usually an immediate error) has the outcome in its headers.
                if let Some(outcome) = grpc_outcome(response.headers()) {
                    return outcome;
                }
                let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                    .collect()
                    .await
                    .map_err(|e| format!("reading the answer: {e}"))?;
                answer.trailers().and_then(grpc_outcome).unwrap_or_else(|| Err("the answer has no grpc-status".into()))
            }
        }
    }
}

/// The outcome told by `grpc-status` (0 is OK), with `grpc-message` on failure.
fn grpc_outcome(headers: &HeaderMap) -> Option<Result<(), String>> {
    let code = headers.get("grpc-status")?;
    if code == "0" {
        return Some(Ok(()));
    }
    // grpc-message is percent-encoded UTF-8.
    let message = headers
        .get("grpc-message")
        .map(|m| percent_encoding::percent_decode(m.as_bytes()).decode_utf8_lossy().into_owned())
        .unwrap_or_default();
    Some(Err(format!("grpc-status {}: {message}", String::from_utf8_lossy(code.as_bytes()))))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};

    use super::*;

    #[test]
    fn grpc_status_decides_and_its_message_is_decoded() {
        let mut h = HeaderMap::new();
        assert_eq!(grpc_outcome(&h), None);
        h.insert("grpc-status", HeaderValue::from_static("0"));
        assert_eq!(grpc_outcome(&h), Some(Ok(())));
        h.insert("grpc-status", HeaderValue::from_static("14"));
        h.insert("grpc-message", HeaderValue::from_static("collector%20down"));
        assert_eq!(grpc_outcome(&h), Some(Err("grpc-status 14: collector down".into())));
    }

    async fn listener() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        (listener, endpoint)
    }

    #[tokio::test]
    async fn an_http_answer_other_than_2xx_is_a_failure() {
        let (listener, endpoint) = listener().await;
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "overloaded") }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let transport = Transport::new(&endpoint, OtlpProtocol::Http, &ClientTlsFiles::default()).expect("transport");
        let outcome = transport.send(Frames::new([])).await;
        assert_eq!(outcome, Err("HTTP status 503 Service Unavailable".into()));
        server.abort();
    }

    struct Refusing;

    #[tonic::async_trait]
    impl TraceService for Refusing {
        async fn export(
            &self,
            _: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            Err(tonic::Status::unavailable("collector down"))
        }
    }

    #[tokio::test]
    async fn a_grpc_error_in_a_trailers_only_answer_is_a_failure() {
        let (listener, endpoint) = listener().await;
        let server = tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Refusing))
                .serve_with_incoming(incoming)
                .await
        });
        let transport = Transport::new(&endpoint, OtlpProtocol::Grpc, &ClientTlsFiles::default()).expect("transport");
        // An empty ExportTraceServiceRequest: the 5-byte prefix with length 0.
        let outcome = transport.send(Frames::new([Bytes::from_static(&[0; GRPC_PREFIX_LEN])])).await;
        assert_eq!(outcome, Err("grpc-status 14: collector down".into()));
        server.abort();
    }
}
