//! Tracing setup: human-readable text or JSON lines on stderr, filtered by `RUST_LOG`
//! (default `info`). Every RPC runs in a span carrying its method, peer identity and offset.
//!
//! Optionally (`--otlp-endpoint`), the same spans are also exported over OTLP/gRPC to a
//! collector, batched in the background; [`TelemetryGuard::shutdown`] flushes what is still
//! queued when the node stops. Only plain `http://` collector endpoints are supported (a
//! collector agent or sidecar next to the node), so no second TLS stack is configured.

use std::time::Duration;

use clap::ValueEnum;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where and as whom spans are exported over OTLP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpExport {
    /// Collector's OTLP/gRPC endpoint, validated by [`parse_otlp_endpoint`].
    pub endpoint: String,
    /// Resource attributes identifying this node (besides `service.name`).
    pub node_ordinal: u64,
    /// The node's advertised address, so traces of one node can be told from another's.
    pub node_address: String,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A global tracing subscriber was already installed.
    #[error("installing the tracing subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
    /// The OTLP exporter could not be built (a configuration error: exit status 64).
    #[error("building the OTLP exporter for {endpoint}: {source}")]
    Exporter {
        /// The collector's endpoint.
        endpoint: String,
        /// Why the exporter could not be built.
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// `service.name` of the exported spans.
pub const SERVICE_NAME: &str = "proglog-node";

/// How long shutdown waits for the last batch of spans to reach the collector.
const EXPORT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks an `--otlp-endpoint` value: an absolute `http://HOST:PORT[/]` URL. Returns the
/// reason when it is not usable, so the node refuses to start instead of silently dropping
/// every span.
pub fn parse_otlp_endpoint(text: &str) -> Result<String, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{text:?}: https is not supported; export to a local collector over http://"
            ));
        }
        _ => return Err(format!("{text:?} must be an http://HOST:PORT URL")),
    }
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| format!("{text:?} has no host"))?;
    if authority.port_u16().is_none() {
        return Err(format!(
            "{text:?} has no port (the OTLP/gRPC port is usually 4317)"
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{text:?} must not have a path or query"));
    }
    Ok(text.to_owned())
}

/// Keeps the OTLP pipeline alive; call [`TelemetryGuard::shutdown`] on graceful shutdown.
#[derive(Debug, Default)]
#[must_use = "spans are only flushed by TelemetryGuard::shutdown"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports the spans still queued and stops the exporter. Call it outside async code
    /// but while the Tokio runtime the exporter was built in is still running (the gRPC
    /// channel lives there).
    pub fn shutdown(self) -> Result<(), String> {
        match self.provider {
            Some(provider) => provider
                .shutdown_with_timeout(EXPORT_SHUTDOWN_TIMEOUT)
                .map_err(|e| format!("flushing OTLP spans: {e}")),
            None => Ok(()),
        }
    }
}

/// Installs the global subscriber (stderr only). Fails if one is already installed.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    init_with_export(format, None).map(|_guard| ())
}

/// Installs the global subscriber, also exporting spans over OTLP when `export` is set.
/// With export, it must be called inside a Tokio runtime (the gRPC channel is spawned there).
pub fn init_with_export(
    format: LogFormat,
    export: Option<&OtlpExport>,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (text, json) = match format {
        LogFormat::Text => (
            // Colours only on a terminal: redirected logs (files, kubectl logs) stay plain text.
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    let provider = export.map(build_provider).transpose()?;
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(SERVICE_NAME))
            // The exporter's own transport must not produce spans to export (a feedback
            // loop when RUST_LOG enables debug output).
            .with_filter(
                Targets::new()
                    .with_default(LevelFilter::TRACE)
                    .with_target("h2", LevelFilter::OFF)
                    .with_target("hyper", LevelFilter::OFF)
                    .with_target("hyper_util", LevelFilter::OFF)
                    .with_target("tonic", LevelFilter::OFF)
                    .with_target("tower", LevelFilter::OFF)
                    .with_target("opentelemetry", LevelFilter::OFF)
                    .with_target("opentelemetry_sdk", LevelFilter::OFF)
                    .with_target("opentelemetry_otlp", LevelFilter::OFF),
            )
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(otel)
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

fn build_provider(export: &OtlpExport) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(export.endpoint.clone())
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: export.endpoint.clone(),
            source,
        })?;
    let resource = Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attributes([
            KeyValue::new("service.instance.id", export.node_address.clone()),
            KeyValue::new("proglog.node.address", export.node_address.clone()),
            KeyValue::new(
                "proglog.node.ordinal",
                i64::try_from(export.node_ordinal).unwrap_or(i64::MAX),
            ),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_endpoints_are_validated() {
        assert_eq!(
            parse_otlp_endpoint("http://127.0.0.1:4317").as_deref(),
            Ok("http://127.0.0.1:4317")
        );
        assert!(parse_otlp_endpoint("http://collector.observability:4317/").is_ok());
        for (bad, why) in [
            ("not a url", "not a URL"),
            ("127.0.0.1:4317", "http://HOST:PORT"),
            ("ftp://127.0.0.1:4317", "http://HOST:PORT"),
            ("https://127.0.0.1:4317", "https is not supported"),
            ("http://127.0.0.1", "no port"),
            ("http://127.0.0.1:4317/v1/traces", "path"),
        ] {
            let err = parse_otlp_endpoint(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
