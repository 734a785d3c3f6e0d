//! `proglog servers`: the cluster's servers (leader marked) and the log's bounds.

use proglog_proto::log::v1::{Consistency, GetLogBoundsRequest, GetServersRequest};

use super::{CliError, ConnectionArgs};

/// Prints one line per server, then the bounds.
pub async fn run(connection: &ConnectionArgs) -> Result<(), CliError> {
    let mut client = connection.client().await?;
    let servers = client.get_servers(GetServersRequest {}).await?.into_inner();
    for server in servers.servers {
        let role = if server.is_leader {
            "leader"
        } else {
            "follower"
        };
        println!("{}\t{}\t{role}", server.id, server.rpc_addr);
    }
    let bounds = client
        .get_log_bounds(GetLogBoundsRequest {
            consistency: Consistency::Local as i32,
        })
        .await?
        .into_inner();
    println!(
        "log offsets: lowest {} next {}",
        bounds.lowest_offset, bounds.next_offset
    );
    Ok(())
}
