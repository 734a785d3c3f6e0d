//! The client's view of the cluster: the servers from `GetServers`, which one leads, one reused
//! channel per server, and the round-robin position for consumes. With `seeds_only` the view is
//! one seed at a time, taken in turn on each refresh, and `GetServers` is never asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use proglog_proto::log::v1::GetServersRequest;
use proglog_proto::log::v1::log_client::LogClient;
use tonic::transport::{Channel, Endpoint};

use super::{ClientConfig, ClientError};

#[derive(Debug, Default)]
struct View {
    leader: Option<String>,
    followers: Vec<String>,
    channels: HashMap<String, Channel>,
}

#[derive(Debug)]
pub(super) struct Routing {
    view: Mutex<View>,
    next_reader: AtomicUsize,
    /// With `seeds_only`: the seed the next refresh points at.
    next_seed: AtomicUsize,
}

fn channel(config: &ClientConfig, addr: &str) -> Option<Channel> {
    Some(
        Endpoint::from_shared(format!("https://{addr}"))
            .ok()?
            .tls_config(config.tls.clone())
            .ok()?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .connect_lazy(),
    )
}

impl Routing {
    pub(super) fn new(_config: &ClientConfig) -> Self {
        Self {
            view: Mutex::new(View::default()),
            next_reader: AtomicUsize::new(0),
            next_seed: AtomicUsize::new(0),
        }
    }

    fn client(&self, config: &ClientConfig, addr: &str) -> Option<LogClient<Channel>> {
        let mut view = self.view.lock();
        let channel = match view.channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = channel(config, addr)?;
                view.channels.insert(addr.to_owned(), channel.clone());
                channel
            }
        };
        Some(
            LogClient::new(channel)
                .max_decoding_message_size(config.max_message_bytes)
                .max_encoding_message_size(config.max_message_bytes),
        )
    }

    /// Asks the known servers, then the seeds, for the server list; the first answer wins.
    pub(super) async fn refresh(&self, config: &ClientConfig) -> Result<(), ClientError> {
        if config.seeds_only {
            let next = self.next_seed.fetch_add(1, Ordering::Relaxed);
            let mut view = self.view.lock();
            view.leader = config.seeds.get(next % config.seeds.len().max(1)).cloned();
            view.followers.clear();
            return Ok(());
        }
        let mut candidates: Vec<String> = {
            let view = self.view.lock();
            view.leader
                .iter()
                .chain(view.followers.iter())
                .cloned()
                .collect()
        };
        for seed in &config.seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let mut last_error = String::from("no candidates");
        for addr in candidates {
            let Some(mut client) = self.client(config, &addr) else {
                last_error = format!("bad address {addr}");
                continue;
            };
            let mut request = tonic::Request::new(GetServersRequest {});
            request.set_timeout(config.request_timeout);
            match client.get_servers(request).await {
                Ok(response) => {
                    let servers = response.into_inner().servers;
                    if servers.is_empty() {
                        last_error = format!("{addr} knows no servers (cluster not initialized?)");
                        continue;
                    }
                    let mut view = self.view.lock();
                    view.leader = servers
                        .iter()
                        .find(|s| s.is_leader)
                        .map(|s| s.rpc_addr.clone());
                    view.followers = servers
                        .iter()
                        .filter(|s| !s.is_leader)
                        .map(|s| s.rpc_addr.clone())
                        .collect();
                    return Ok(());
                }
                Err(status) => last_error = format!("{addr}: {}", status.message()),
            }
        }
        Err(ClientError::Unreachable(last_error))
    }

    pub(super) fn leader(&self) -> Option<String> {
        self.view.lock().leader.clone()
    }

    pub(super) fn leader_client(
        &self,
        config: &ClientConfig,
    ) -> Option<(String, LogClient<Channel>)> {
        let addr = self.leader()?;
        let client = self.client(config, &addr)?;
        Some((addr, client))
    }

    /// A follower in turn; the leader when asked for or when there is no follower.
    pub(super) fn reader_client(
        &self,
        config: &ClientConfig,
        prefer_leader: bool,
    ) -> Option<(String, LogClient<Channel>)> {
        let addr = {
            let view = self.view.lock();
            if prefer_leader || view.followers.is_empty() {
                view.leader
                    .clone()
                    .or_else(|| view.followers.first().cloned())
            } else {
                let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % view.followers.len();
                Some(view.followers[i].clone())
            }
        }?;
        let client = self.client(config, &addr)?;
        Some((addr, client))
    }

    pub(super) fn forget_leader(&self, addr: &str) {
        let mut view = self.view.lock();
        if view.leader.as_deref() == Some(addr) {
            view.leader = None;
        }
    }

    pub(super) fn forget(&self, addr: &str) {
        let mut view = self.view.lock();
        if view.leader.as_deref() == Some(addr) {
            view.leader = None;
        }
        view.followers.retain(|f| f != addr);
    }
}
