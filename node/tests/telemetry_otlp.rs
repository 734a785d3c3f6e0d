//! OTLP trace export of `proglog-node` (`--otlp-endpoint`): a fake collector on loopback
//! receives the Produce RPC's span with the node's resource when the node shuts down
//! gracefully, and an unusable endpoint stops the node with status 64.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tonic::{Request, Response, Status};

mod node_process;

use node_process::{NODE, free_port, make_certs, node_args, produce_when_up, stop};

/// A collector that hands every export request to the test.
#[derive(Debug)]
struct FakeCollector {
    received: mpsc::Sender<ExportTraceServiceRequest>,
}

#[tonic::async_trait]
impl TraceService for FakeCollector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        // The test may have stopped listening; the collector still answers.
        let _ = self.received.send(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts the fake collector on 127.0.0.1:0 in `runtime`; returns its endpoint URL.
fn start_collector(
    runtime: &tokio::runtime::Runtime,
) -> (String, mpsc::Receiver<ExportTraceServiceRequest>) {
    let (sender, receiver) = mpsc::channel();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(FakeCollector { received: sender }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), receiver)
}

fn string_attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// An attribute as text: tracing records integers such as `offset` as text or as integers
/// depending on the layer, and either is fine here.
fn text_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

fn int_attr(attributes: &[KeyValue], key: &str) -> Option<i64> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::IntValue(i) => Some(*i),
            _ => None,
        }
    })
}

/// What the collector saw of one exported Produce span.
#[derive(Debug, PartialEq)]
struct ProduceSpan {
    service_name: String,
    node_address: String,
    node_ordinal: i64,
    span_name: String,
    offset: Option<String>,
}

fn produce_spans(request: &ExportTraceServiceRequest) -> Vec<ProduceSpan> {
    let mut found = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            if string_attr(&span.attributes, "method") == Some("Produce") {
                found.push(ProduceSpan {
                    service_name: string_attr(resource, "service.name")
                        .unwrap_or_default()
                        .to_owned(),
                    node_address: string_attr(resource, "proglog.node.address")
                        .unwrap_or_default()
                        .to_owned(),
                    node_ordinal: int_attr(resource, "proglog.node.ordinal").unwrap_or(-1),
                    span_name: span.name.clone(),
                    offset: text_attr(&span.attributes, "offset"),
                });
            }
        }
    }
    found
}

#[test]
fn produce_span_reaches_the_collector_on_graceful_shutdown() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (endpoint, received) = start_collector(&runtime);
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());

    let (port, metrics_port) = (free_port(), free_port());
    let node = Command::new(NODE)
        .args(node_args(dir.path(), port, metrics_port))
        .args(["--ordinal", "3"])
        .env("PROGLOG_OTLP_ENDPOINT", &endpoint)
        // Batches would otherwise leave every 5 s; an hour means only the flush on
        // shutdown can deliver the span, which is what this test checks.
        .env("OTEL_BSP_SCHEDULE_DELAY", "3600000")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = produce_when_up(dir.path(), port, "traced");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");

    let status = stop(node);
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");

    // The node has exited, so everything it exported has been received already; the
    // timeout only guards against a hang.
    let mut spans = Vec::new();
    while let Ok(request) = received.recv_timeout(Duration::from_secs(10)) {
        spans.extend(produce_spans(&request));
        if spans.iter().any(|s| s.offset.as_deref() == Some("0")) {
            break;
        }
    }
    let produced = spans
        .iter()
        .find(|s| s.offset.as_deref() == Some("0"))
        .unwrap_or_else(|| panic!("no successful Produce span exported; saw {spans:?}"));
    assert_eq!(
        produced,
        &ProduceSpan {
            service_name: "proglog-node".into(),
            node_address: format!("127.0.0.1:{port}"),
            node_ordinal: 3,
            span_name: "Produce".into(),
            offset: Some("0".into()),
        }
    );
}

#[test]
fn unusable_otlp_endpoint_exits_with_status_64_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    for (how, endpoint, why) in [
        ("flag", "not a url", "is not a URL"),
        ("env", "https://127.0.0.1:4317", "https is not supported"),
        ("flag", "http://127.0.0.1", "has no port"),
    ] {
        let mut command = Command::new(NODE);
        command.args(node_args(dir.path(), free_port(), free_port()));
        match how {
            "flag" => command.args(["--otlp-endpoint", endpoint]),
            _ => command.env("PROGLOG_OTLP_ENDPOINT", endpoint),
        };
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{endpoint}: {stderr}");
        assert!(
            stderr.contains("otlp-endpoint") && stderr.contains(why),
            "{endpoint}: {stderr}"
        );
    }
}
