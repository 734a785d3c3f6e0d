//! A local TCP relay to a Service's ClusterIP, for hosts that reach ClusterIPs (the local
//! cluster's host is its node, where kube-proxy's rules apply; a kind node's Service range can be
//! routed to from the runner). Each accepted connection opens its own connection to the
//! ClusterIP, so kube-proxy picks a pod per connection and one connection's end never touches
//! another: the path of an application inside the cluster. `kubectl port-forward` differs in
//! both: it tunnels every connection to the one pod it picked when it started, and it gives up on
//! *all* of them as soon as one fails (a refused dial, a write to a closed socket), in-flight
//! calls included — so a load that must see exactly what applications see goes through this
//! relay when it can ([`ServiceAccess`]).

use std::{net::SocketAddr, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    process::Command,
    task::JoinHandle,
};

use crate::{E2eError, env};

/// How the e2e suite's clients reach a cluster's client Service (`PROGLOG_E2E_SERVICE_ACCESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceAccess {
    /// `cluster-ip`: through a [`Relay`] to the Service's ClusterIP; a failure if unreachable.
    ClusterIp,
    /// `port-forward`: through `kubectl port-forward service/NAME`.
    PortForward,
    /// Unset: the ClusterIP when this host reaches it, else a port-forward (each scenario logs
    /// which).
    Auto,
}

impl ServiceAccess {
    /// From `PROGLOG_E2E_SERVICE_ACCESS`.
    pub fn from_env() -> Result<Self, E2eError> {
        match std::env::var("PROGLOG_E2E_SERVICE_ACCESS").as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Self::Auto),
            Ok("cluster-ip") => Ok(Self::ClusterIp),
            Ok("port-forward") => Ok(Self::PortForward),
            Ok(other) => Err(E2eError::Unexpected(format!(
                "PROGLOG_E2E_SERVICE_ACCESS={other}: expected cluster-ip, port-forward or auto"
            ))),
        }
    }
}

/// How long the reachability probe and each relayed connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The ClusterIP address of Service `service` in `namespace` on `port`, if it has one.
pub async fn cluster_ip(
    namespace: &str,
    service: &str,
    port: u16,
) -> Result<Option<SocketAddr>, E2eError> {
    let kubectl = env::kubectl();
    let output = Command::new(&kubectl)
        .args(["-n", namespace, "get", "service", service])
        .args(["-o", "jsonpath={.spec.clusterIP}"])
        .output()
        .await
        .map_err(|source| E2eError::Spawn {
            program: kubectl.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(E2eError::Unexpected(format!(
            "kubectl get service {service}: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let ip = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(ip
        .parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port)))
}

/// Whether this host opens a TCP connection to `addr` within the connect timeout.
pub async fn reachable(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// A listener on 127.0.0.1 relaying every connection to `target` (see the module doc); stops
/// accepting when dropped (relayed connections run to their end).
#[derive(Debug)]
pub struct Relay {
    /// The local port on 127.0.0.1.
    pub local_port: u16,
    accepting: JoinHandle<()>,
}

impl Relay {
    /// Starts relaying a free local port to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self, E2eError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|err| E2eError::Unexpected(format!("binding the relay: {err}")))?;
        let local_port = listener
            .local_addr()
            .map_err(|err| E2eError::Unexpected(format!("the relay's address: {err}")))?
            .port();
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    // A refused or timed-out connect closes the client's connection before its
                    // TLS handshake: the client sees a failed connect, as it would directly.
                    let Ok(Ok(mut server)) =
                        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await
                    else {
                        return;
                    };
                    let _ = server.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Ok(Self {
            local_port,
            accepting,
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}
