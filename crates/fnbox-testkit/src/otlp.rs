//! An OTLP/HTTP receiver on 127.0.0.1 that decodes what it is sent with `opentelemetry-proto`
//! (the protobuf messages every OpenTelemetry SDK and Collector use) and keeps it for the test.
//! `/v1/traces`, `/v1/metrics` and `/v1/logs` answer 200 with an empty protobuf response.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

pub use opentelemetry_proto::tonic as proto;

#[derive(Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
    /// Requests whose body did not decode, with the path.
    undecodable: Vec<String>,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// Bound address; the OTLP endpoint is `http://<addr>`.
    pub addr: SocketAddr,
    received: Arc<Mutex<Received>>,
}

/// A span with the `service.name` of its resource.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// `service.name`.
    pub service: String,
    /// The resource's attributes.
    pub resource: Vec<KeyValue>,
    /// The span.
    pub span: Span,
}

impl Receiver {
    /// Binds 127.0.0.1 on a free port and serves until the runtime ends.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let me = Self {
            addr: listener.local_addr()?,
            received: Default::default(),
        };
        let state = me.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: bytes::Bytes| {
            let state = state.clone();
            async move {
                let mut r = state.received.lock().unwrap();
                let ok = match uri.path() {
                    "/v1/traces" => ExportTraceServiceRequest::decode(body)
                        .map(|m| r.traces.push(m))
                        .is_ok(),
                    "/v1/metrics" => ExportMetricsServiceRequest::decode(body)
                        .map(|m| r.metrics.push(m))
                        .is_ok(),
                    "/v1/logs" => ExportLogsServiceRequest::decode(body)
                        .map(|m| r.logs.push(m))
                        .is_ok(),
                    _ => false,
                };
                if ok {
                    (
                        axum::http::StatusCode::OK,
                        [("content-type", "application/x-protobuf")],
                    )
                } else {
                    r.undecodable.push(uri.path().to_string());
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        [("content-type", "text/plain")],
                    )
                }
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(me)
    }

    /// `http://<addr>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Paths of requests that did not decode.
    pub fn undecodable(&self) -> Vec<String> {
        self.received.lock().unwrap().undecodable.clone()
    }

    /// Every span received, with its resource.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let r = self.received.lock().unwrap();
        let mut out = Vec::new();
        for req in &r.traces {
            for rs in &req.resource_spans {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.clone())
                    .unwrap_or_default();
                let service = string_attr(&resource, "service.name").unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push(ReceivedSpan {
                            service: service.clone(),
                            resource: resource.clone(),
                            span: span.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// The latest data of every metric received, by name (cumulative metrics: the last
    /// export holds the totals).
    pub fn metrics(&self) -> Vec<Metric> {
        let r = self.received.lock().unwrap();
        let mut latest: Vec<Metric> = Vec::new();
        for req in &r.metrics {
            for rm in &req.resource_metrics {
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        latest.retain(|x| x.name != m.name);
                        latest.push(m.clone());
                    }
                }
            }
        }
        latest
    }

    /// Every log record received.
    pub fn logs(&self) -> Vec<LogRecord> {
        let r = self.received.lock().unwrap();
        r.logs
            .iter()
            .flat_map(|req| &req.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| sl.log_records.clone())
            .collect()
    }
}

/// The string value of attribute `key`.
pub fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attr(attrs, key).and_then(|v| match v {
        any_value::Value::StringValue(s) => Some(s),
        _ => None,
    })
}

/// The value of attribute `key`.
pub fn attr(attrs: &[KeyValue], key: &str) -> Option<any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v: AnyValue| v.value)
}

/// Lowercase hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
