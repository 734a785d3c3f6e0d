//! `kubectl port-forward` to a Service or a pod, bound to 127.0.0.1 on a port kubectl picks.
//! For a Service, the API server tunnels the connection to one pod behind it (kubectl picks it
//! when it starts), so the client reaches the cluster as an in-cluster client of the Service
//! would, minus kube-proxy's balancing. A forward dies with its pod: [`SharedForward`] restarts
//! it on demand, so long-running clients survive pod restarts.

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::Mutex,
};

use crate::{
    E2eError, env,
    relay::{self, Relay, ServiceAccess},
};

/// A running port-forward; the kubectl process is killed when this is dropped.
#[derive(Debug)]
pub struct PortForward {
    /// The local port on 127.0.0.1.
    pub local_port: u16,
    /// What is forwarded (`service/NAME` or `pod/NAME`), for messages.
    pub target: String,
    kubectl: Child,
}

impl PortForward {
    /// Forwards a free local port to `remote_port` of Service `service` in `namespace`.
    pub async fn to_service(
        namespace: &str,
        service: &str,
        remote_port: u16,
        timeout: Duration,
    ) -> Result<Self, E2eError> {
        Self::start(
            namespace,
            &format!("service/{service}"),
            remote_port,
            timeout,
        )
        .await
    }

    /// Forwards a free local port to `remote_port` of pod `pod` in `namespace`.
    pub async fn to_pod(
        namespace: &str,
        pod: &str,
        remote_port: u16,
        timeout: Duration,
    ) -> Result<Self, E2eError> {
        Self::start(namespace, &format!("pod/{pod}"), remote_port, timeout).await
    }

    /// Forwards a free local port to `remote_port` of `target` (`service/NAME`, `pod/NAME`).
    pub async fn start(
        namespace: &str,
        target: &str,
        remote_port: u16,
        timeout: Duration,
    ) -> Result<Self, E2eError> {
        let kubectl = env::kubectl();
        let mut child = Command::new(&kubectl)
            .args(["-n", namespace, "port-forward", "--address", "127.0.0.1"])
            .arg(target)
            .arg(format!(":{remote_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // kubectl's errors (a pod gone, a refused stream) go to the test's stderr as they
            // happen: they explain failed connections.
            .stderr(Stdio::inherit())
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
                Err(E2eError::PortForward(format!(
                    "kubectl port-forward {target} exited before forwarding"
                )))
            };
        let local_port = match tokio::time::timeout(timeout, first_port).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(E2eError::PortForward(format!(
                    "no \"Forwarding from\" line for {target} within {timeout:?}"
                )));
            }
        };
        // Keep draining stdout so kubectl never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            local_port,
            target: target.to_owned(),
            kubectl: child,
        })
    }

    /// False once kubectl has exited (recent kubectl versions exit when the pod goes away).
    pub fn is_alive(&mut self) -> bool {
        matches!(self.kubectl.try_wait(), Ok(None))
    }
}

/// A port-forward shared by concurrent clients and restarted when it breaks. Every start gets a
/// new generation, so a client that saw generation `g` fail asks for a restart of `g` only, and
/// many clients seeing the same failure restart it once. For a `service/NAME` target it is a
/// [`Relay`] to the Service's ClusterIP instead when [`ServiceAccess`] says so (it never breaks).
#[derive(Debug)]
pub struct SharedForward {
    namespace: String,
    target: String,
    remote_port: u16,
    state: Mutex<(Tunnel, u64)>,
}

/// What carries a [`SharedForward`]'s connections.
#[derive(Debug)]
enum Tunnel {
    Kubectl(Box<PortForward>),
    Relay(Relay),
}

impl Tunnel {
    fn local_port(&self) -> u16 {
        match self {
            Tunnel::Kubectl(forward) => forward.local_port,
            Tunnel::Relay(relay) => relay.local_port,
        }
    }

    fn is_alive(&mut self) -> bool {
        match self {
            Tunnel::Kubectl(forward) => forward.is_alive(),
            Tunnel::Relay(_) => true,
        }
    }
}

impl SharedForward {
    /// Starts the forward to `target` (`service/NAME` or `pod/NAME`).
    pub async fn start(namespace: &str, target: &str, remote_port: u16) -> Result<Self, E2eError> {
        let tunnel = Self::tunnel(namespace, target, remote_port).await?;
        Ok(Self {
            namespace: namespace.to_owned(),
            target: target.to_owned(),
            remote_port,
            state: Mutex::new((tunnel, 0)),
        })
    }

    /// How this forward reaches its target: `kubectl port-forward`, or a relay to a Service's
    /// ClusterIP (see [`ServiceAccess`]).
    pub async fn describe(&self) -> String {
        match &self.state.lock().await.0 {
            Tunnel::Kubectl(_) => format!("kubectl port-forward {}", self.target),
            Tunnel::Relay(_) => format!("a relay to the ClusterIP of {}", self.target),
        }
    }

    async fn tunnel(namespace: &str, target: &str, remote_port: u16) -> Result<Tunnel, E2eError> {
        let access = ServiceAccess::from_env()?;
        if let Some(service) = target.strip_prefix("service/")
            && access != ServiceAccess::PortForward
        {
            let address = relay::cluster_ip(namespace, service, remote_port).await?;
            match address {
                Some(address) if relay::reachable(address).await => {
                    return Ok(Tunnel::Relay(Relay::start(address).await?));
                }
                _ if access == ServiceAccess::ClusterIp => {
                    return Err(E2eError::PortForward(format!(
                        "PROGLOG_E2E_SERVICE_ACCESS=cluster-ip, but {target}'s ClusterIP \
                         ({address:?}) does not answer from this host"
                    )));
                }
                _ => {}
            }
        }
        Ok(Tunnel::Kubectl(Box::new(
            PortForward::start(namespace, target, remote_port, env::api_timeout()).await?,
        )))
    }

    /// The current local port and its generation; restarts the forward first if kubectl exited.
    pub async fn port(&self) -> Result<(u16, u64), E2eError> {
        let mut state = self.state.lock().await;
        if !state.0.is_alive() {
            let generation = state.1;
            self.restart_locked(&mut state, generation).await?;
        }
        Ok((state.0.local_port(), state.1))
    }

    /// Restarts the forward unless a newer generation than `seen` already replaced it.
    pub async fn restart(&self, seen: u64) -> Result<(), E2eError> {
        let mut state = self.state.lock().await;
        self.restart_locked(&mut state, seen).await
    }

    async fn restart_locked(&self, state: &mut (Tunnel, u64), seen: u64) -> Result<(), E2eError> {
        // A relay never breaks: a failed connection is the cluster's, not the tunnel's.
        if state.1 != seen || matches!(state.0, Tunnel::Relay(_)) {
            return Ok(());
        }
        let tunnel = Self::tunnel(&self.namespace, &self.target, self.remote_port).await?;
        *state = (tunnel, seen + 1);
        Ok(())
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
