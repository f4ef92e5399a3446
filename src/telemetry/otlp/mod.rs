//! OTLP trace export without the OpenTelemetry SDK: batches of finished spans are encoded
//! straight into protobuf bytes and sent to the collector over OTLP/HTTP or OTLP/gRPC.

mod encode;
mod transport;

use bytes::{BufMut, Bytes, BytesMut};

use crate::config::OtlpProtocol;
use crate::telemetry::spans::{ExportSettings, FinishedSpan};

use encode::RequestEncoder;
use transport::{GRPC_PREFIX_LEN, Transport};

/// Encodes and sends batches; one per export task, reusing its buffers across batches.
pub struct Exporter {
    encoder: RequestEncoder,
    transport: Transport,
    /// The request body. `split().freeze()` hands its bytes to hyper without a copy; once hyper
    /// has dropped them, the next batch's writes take the same allocation back.
    body: BytesMut,
}

impl Exporter {
    pub fn new(settings: &ExportSettings) -> Result<Exporter, String> {
        Ok(Exporter {
            encoder: RequestEncoder::new(&settings.resource),
            transport: Transport::new(&settings.endpoint, settings.protocol, &settings.tls)?,
            body: BytesMut::new(),
        })
    }

    /// Sends one batch; Ok once the collector accepted it.
    pub async fn export(&mut self, batch: &[FinishedSpan]) -> Result<(), String> {
        let body = self.encode(batch)?;
        self.transport.send(body).await
    }

    fn encode(&mut self, batch: &[FinishedSpan]) -> Result<Bytes, String> {
        self.body.clear();
        match self.transport.protocol() {
            OtlpProtocol::Http => self.encoder.encode(batch, &mut self.body),
            OtlpProtocol::Grpc => {
                // The length is known only after encoding: reserve the prefix, fill it in after.
                self.body.put_bytes(0, GRPC_PREFIX_LEN);
                self.encoder.encode(batch, &mut self.body);
                let len = u32::try_from(self.body.len() - GRPC_PREFIX_LEN)
                    .map_err(|_| format!("a batch of {} spans exceeds gRPC's 4 GiB message limit", batch.len()))?;
                self.body[1..GRPC_PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
            }
        }
        Ok(self.body.split().freeze())
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
