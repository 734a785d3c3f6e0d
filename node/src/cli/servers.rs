//! `proglog servers`: the cluster's servers (leader marked) and the log's bounds.

use proglog_proto::log::v1::Consistency;

use super::{CliError, ConnectionArgs};

/// Prints one line per server, then the bounds.
pub async fn run(connection: &ConnectionArgs) -> Result<(), CliError> {
    let client = connection.cluster_client().await?;
    for server in client.servers().await? {
        let role = if server.is_leader {
            "leader"
        } else {
            "follower"
        };
        println!("{}\t{}\t{role}", server.id, server.rpc_addr);
    }
    let bounds = client.log_bounds(Consistency::Local).await?;
    println!(
        "log offsets: lowest {} next {}",
        bounds.lowest_offset, bounds.next_offset
    );
    Ok(())
}
