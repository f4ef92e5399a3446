//! An OTLP trace receiver for tests, over HTTP/protobuf (`POST /v1/traces`) or gRPC, that
//! decodes with the official OpenTelemetry protobuf definitions (`opentelemetry-proto`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// One received span with the resource it came with.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub resource: Vec<KeyValue>,
    pub span: Span,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&Value> {
        find(&self.span.attributes, key)
    }

    pub fn resource_attr(&self, key: &str) -> Option<&Value> {
        find(&self.resource, key)
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_span_id_hex(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn string(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

pub fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<Vec<ReceivedSpan>>>);

impl Received {
    fn add(&self, req: ExportTraceServiceRequest) {
        let mut all = self.0.lock().expect("received spans");
        for rs in req.resource_spans {
            let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    all.push(ReceivedSpan { resource: resource.clone(), span });
                }
            }
        }
    }

    pub fn all(&self) -> Vec<ReceivedSpan> {
        self.0.lock().expect("received spans").clone()
    }

    /// Polls until a span satisfies `pred`.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&ReceivedSpan) -> bool) -> ReceivedSpan {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self.all().into_iter().find(|s| pred(s)) {
                return s;
            }
            assert!(Instant::now() < deadline, "no span {what} arrived; got {:#?}", self.all());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

pub struct OtlpReceiver {
    pub addr: SocketAddr,
    pub received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// OTLP/HTTP with protobuf bodies on `/v1/traces`.
    pub async fn http() -> OtlpReceiver {
        let received = Received::default();
        let app =
            axum::Router::new().route("/v1/traces", axum::routing::post(http_export)).with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind OTLP receiver");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OtlpReceiver { addr, received, task }
    }

    /// OTLP/gRPC (`opentelemetry.proto.collector.trace.v1.TraceService/Export`).
    pub async fn grpc() -> OtlpReceiver {
        let received = Received::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind OTLP gRPC receiver");
        let addr = listener.local_addr().expect("addr");
        let service = TraceServiceServer::new(GrpcCollector(received.clone()));
        let task = tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
        });
        OtlpReceiver { addr, received, task }
    }
}

impl OtlpReceiver {
    /// OTLP/HTTP and OTLP/gRPC on one TLS port (`https://`), as a collector with TLS serves them.
    pub async fn https(acceptor: tokio_rustls::TlsAcceptor) -> OtlpReceiver {
        let received = Received::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_export))
            .with_state(received.clone())
            .route_service(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                TraceServiceServer::new(GrpcCollector(received.clone())),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind OTLP TLS receiver");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that fails the handshake (say, without a certificate) is dropped.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let mut app = app.clone();
                        async move { tower_service::Service::call(&mut app, req.map(axum::body::Body::new)).await }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        OtlpReceiver { addr, received, task }
    }

    pub fn https_endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn http_export(State(received): State<Received>, body: Bytes) -> impl IntoResponse {
    match ExportTraceServiceRequest::decode(body) {
        Ok(req) => {
            received.add(req);
            let resp = ExportTraceServiceResponse::default().encode_to_vec();
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-protobuf")], resp).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("not an ExportTraceServiceRequest: {e}")).into_response(),
    }
}

struct GrpcCollector(Received);

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A TCP peer that accepts connections and never answers: a hung collector.
pub async fn hanging_collector() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}
