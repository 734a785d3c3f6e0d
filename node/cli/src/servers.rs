//! `proglog servers`: the cluster's servers (leader marked) and the log's bounds.

use proglog_proto::log::v1::Consistency;

use super::output::{OutputFormat, print_json};
use super::{CliError, ConnectionArgs};

/// Prints one line per server, then the bounds (or one JSON object with both).
pub async fn run(connection: &ConnectionArgs, output: OutputFormat) -> Result<(), CliError> {
    let client = connection.cluster_client().await?;
    let servers = client.servers().await?;
    let bounds = client.log_bounds(Consistency::Local).await?;
    if output.is_json() {
        print_json(&serde_json::json!({
            "servers": servers.iter().map(|s| serde_json::json!({
                "id": s.id,
                "rpc_addr": s.rpc_addr,
                "is_leader": s.is_leader,
            })).collect::<Vec<_>>(),
            "lowest_offset": bounds.lowest_offset,
            "next_offset": bounds.next_offset,
        }));
        return Ok(());
    }
    for server in servers {
        let role = if server.is_leader {
            "leader"
        } else {
            "follower"
        };
        println!("{}\t{}\t{role}", server.id, server.rpc_addr);
    }
    println!(
        "log offsets: lowest {} next {}",
        bounds.lowest_offset, bounds.next_offset
    );
    Ok(())
}
