//! `kubectl port-forward` to a Service, bound to 127.0.0.1 on a port kubectl picks. The API
//! server tunnels the connection to a pod behind the Service, so the client reaches the cluster
//! exactly as an in-cluster client of the Service would (minus kube-proxy's balancing).

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{E2eError, env};

/// A running port-forward; the kubectl process is killed when this is dropped.
#[derive(Debug)]
pub struct PortForward {
    /// The local port on 127.0.0.1.
    pub local_port: u16,
    _kubectl: Child,
}

impl PortForward {
    /// Forwards a free local port to `remote_port` of Service `service` in `namespace`.
    pub async fn to_service(
        namespace: &str,
        service: &str,
        remote_port: u16,
        timeout: Duration,
    ) -> Result<Self, E2eError> {
        let kubectl = env::kubectl();
        let mut child = Command::new(&kubectl)
            .args(["-n", namespace, "port-forward", "--address", "127.0.0.1"])
            .arg(format!("service/{service}"))
            .arg(format!(":{remote_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| E2eError::Spawn {
                program: kubectl.clone(),
                source,
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| E2eError::PortForward("no stdout pipe".to_owned()))?;
        let mut lines = BufReader::new(stdout).lines();
        let first_port =
            async {
                while let Some(line) = lines.next_line().await.map_err(|err| {
                    E2eError::PortForward(format!("reading kubectl output: {err}"))
                })? {
                    if let Some(port) = parse_forwarding_line(&line) {
                        return Ok(port);
                    }
                }
                Err(E2eError::PortForward(
                    "kubectl exited before forwarding (see its stderr above)".to_owned(),
                ))
            };
        let local_port = match tokio::time::timeout(timeout, first_port).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(E2eError::PortForward(format!(
                    "no \"Forwarding from\" line within {timeout:?}"
                )));
            }
        };
        // Keep draining stdout so kubectl never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            local_port,
            _kubectl: child,
        })
    }
}

/// Parses kubectl's `Forwarding from 127.0.0.1:43123 -> 8400`.
pub fn parse_forwarding_line(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("Forwarding from 127.0.0.1:")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_forwarding_line;

    #[test]
    fn parses_the_local_port_of_kubectl_output() {
        assert_eq!(
            parse_forwarding_line("Forwarding from 127.0.0.1:43123 -> 8400"),
            Some(43123)
        );
    }

    #[test]
    fn ignores_other_lines() {
        assert_eq!(
            parse_forwarding_line("Forwarding from [::1]:43123 -> 8400"),
            None
        );
        assert_eq!(parse_forwarding_line("Handling connection for 43123"), None);
        assert_eq!(
            parse_forwarding_line("Forwarding from 127.0.0.1:x -> 8400"),
            None
        );
    }
}
