//! The resource bounds of the node's configuration (`--memory-budget-bytes`,
//! `--max-connections`, `--max-unauthenticated-connections`, `--unauthenticated-timeout`,
//! `--http2-*`): defaults and validation. See ARCHITECTURE "Bounded resources".

use std::time::Duration;

use super::{ConfigError, NodeArgs, invalid};
use crate::server::{Http2Limits, ServerLimits};

/// The smallest memory budget accepted: 1 MiB (a smaller one would serialize every call).
pub const MIN_MEMORY_BUDGET_BYTES: u64 = 1 << 20;
/// HTTP/2's largest flow-control window (RFC 9113 §6.9.1).
const MAX_WINDOW: u32 = (1 << 31) - 1;
/// HTTP/2's bounds of `SETTINGS_MAX_FRAME_SIZE` (RFC 9113 §6.5.2).
const FRAME_BOUNDS: (u32, u32) = (1 << 14, (1 << 24) - 1);

/// Validated resource bounds, applied to [`ServerLimits`].
#[derive(Debug, Clone)]
pub(super) struct Resources {
    memory_budget_bytes: usize,
    max_connections: usize,
    max_unauthenticated_connections: usize,
    unauthenticated_timeout: Duration,
    http2: Http2Limits,
}

impl Resources {
    pub(super) fn from_args(args: &NodeArgs) -> Result<Self, ConfigError> {
        let defaults = ServerLimits::default();
        let memory_budget_bytes = match args.memory_budget_bytes {
            None => defaults.memory_budget_bytes,
            Some(bytes) if bytes < MIN_MEMORY_BUDGET_BYTES => {
                return Err(invalid(
                    "memory-budget-bytes",
                    format!("must be at least {MIN_MEMORY_BUDGET_BYTES} (1 MiB)"),
                ));
            }
            Some(bytes) => usize::try_from(bytes)
                .map_err(|_| invalid("memory-budget-bytes", "too large for this platform"))?,
        };
        let count = |value: Option<u64>, default: usize, name: &'static str| match value {
            None => Ok(default),
            Some(0) => Err(invalid(name, "must be at least 1")),
            Some(n) => usize::try_from(n).map_err(|_| invalid(name, "too large")),
        };
        let max_connections = count(
            args.max_connections,
            defaults.max_connections,
            "max-connections",
        )?;
        let max_unauthenticated_connections = count(
            args.max_unauthenticated_connections,
            defaults.max_unauthenticated_connections,
            "max-unauthenticated-connections",
        )?;
        let unauthenticated_timeout = match args.unauthenticated_timeout {
            None => defaults.unauthenticated_timeout,
            Some(d) if Duration::from(d).is_zero() => {
                return Err(invalid(
                    "unauthenticated-timeout",
                    "must be greater than zero",
                ));
            }
            Some(d) => d.into(),
        };
        let within = |value: Option<u32>, default: u32, (min, max): (u32, u32), name| match value {
            None => Ok(default),
            Some(v) if v < min || v > max => Err(invalid(
                name,
                format!("must be between {min} and {max} bytes"),
            )),
            Some(v) => Ok(v),
        };
        let d = defaults.http2;
        let http2 = Http2Limits {
            stream_window_bytes: within(
                args.http2_stream_window_bytes,
                d.stream_window_bytes,
                (65_535, MAX_WINDOW),
                "http2-stream-window-bytes",
            )?,
            connection_window_bytes: within(
                args.http2_connection_window_bytes,
                d.connection_window_bytes,
                (65_535, MAX_WINDOW),
                "http2-connection-window-bytes",
            )?,
            max_frame_bytes: within(
                args.http2_max_frame_bytes,
                d.max_frame_bytes,
                FRAME_BOUNDS,
                "http2-max-frame-bytes",
            )?,
            max_header_list_bytes: within(
                args.http2_max_header_list_bytes,
                d.max_header_list_bytes,
                (1024, 16 << 20),
                "http2-max-header-list-bytes",
            )?,
        };
        Ok(Self {
            memory_budget_bytes,
            max_connections,
            max_unauthenticated_connections,
            unauthenticated_timeout,
            http2,
        })
    }

    /// `limits` with these bounds.
    pub(super) fn apply(self, limits: ServerLimits) -> ServerLimits {
        ServerLimits {
            memory_budget_bytes: self.memory_budget_bytes,
            max_connections: self.max_connections,
            max_unauthenticated_connections: self.max_unauthenticated_connections,
            unauthenticated_timeout: self.unauthenticated_timeout,
            http2: self.http2,
            ..limits
        }
    }
}
