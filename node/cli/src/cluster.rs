//! `proglog cluster status|init|add|promote|remove|transfer`: membership through the admin API
//! (needs the `admin` identity). Membership changes go to the leader: the command asks the node
//! at `--addr` who leads and sends the change there. With `--output json` each command prints
//! one JSON object: the status, or the membership after a change (`event` says what happened).

use clap::{Args, Subcommand};
use proglog_proto::proglog::admin::v1::admin_client::AdminClient;
use proglog_proto::proglog::admin::v1::{
    AddLearnerRequest, ClusterStatusRequest, ClusterStatusResponse, InitializeRequest, Member,
    MembershipResponse, NodeInfoRequest, PromoteVoterRequest, RemoveNodeRequest,
    TransferLeadershipRequest,
};
use serde_json::{Value, json};
use tonic::transport::Channel;

use super::output::{OutputFormat, print_json, spinner};
use super::{CliError, ConnectionArgs};

/// `proglog cluster ...`
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Which membership change or query to run.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// The membership subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Leader, term, members with their replication progress, this node's log bounds.
    Status,
    /// Make the node at --addr the first voter of a new cluster (refused if it has Raft state).
    Init {
        /// Succeed without doing anything when the node already has Raft state.
        #[arg(long)]
        if_needed: bool,
    },
    /// Add the node at NODE_ADDR as a learner, wait until it caught up, then (unless
    /// --learner) promote it to voter.
    Add {
        /// The new node's advertised HOST:PORT (its id is asked from the node itself).
        node_addr: String,
        /// Keep it a learner.
        #[arg(long)]
        learner: bool,
    },
    /// Promote a learner to voter.
    Promote {
        /// The learner's node id (as `proglog cluster status` lists it).
        node_id: u64,
    },
    /// Remove a node (voter or learner) from the cluster.
    Remove {
        /// The node's id (as `proglog cluster status` lists it).
        node_id: u64,
    },
    /// Hand leadership to another voter.
    Transfer {
        /// The id of the voter to lead next.
        node_id: u64,
    },
}

async fn admin_at(
    connection: &ConnectionArgs,
    addr: &str,
) -> Result<AdminClient<Channel>, CliError> {
    let mut connection = connection.clone();
    if connection.addr != addr {
        connection.addr = addr.to_owned();
        // Verify the other node against its own host name, not the one of --addr.
        connection.server_name = None;
    }
    Ok(AdminClient::new(connection.channel().await?))
}

/// An admin client to the leader (the node at --addr when it leads or no leader is known).
async fn leader_admin(connection: &ConnectionArgs) -> Result<AdminClient<Channel>, CliError> {
    let mut admin = admin_at(connection, &connection.addr).await?;
    let status = admin
        .cluster_status(ClusterStatusRequest {})
        .await?
        .into_inner();
    if status.leader_id == 0 {
        return Err(CliError::Usage(
            "the cluster has no leader right now (not initialized, or an election is running); retry"
                .to_owned(),
        ));
    }
    if status.leader_id == status.node_id {
        return Ok(admin);
    }
    let leader = status
        .members
        .iter()
        .filter_map(|m| m.member.as_ref())
        .find(|m| m.node_id == status.leader_id)
        .ok_or_else(|| {
            CliError::Usage(format!("leader {} has no known address", status.leader_id))
        })?;
    admin_at(connection, &leader.rpc_addr).await
}

fn members_json(members: &[Member]) -> Value {
    members
        .iter()
        .map(|m| json!({ "node_id": m.node_id, "rpc_addr": m.rpc_addr }))
        .collect()
}

/// Prints what happened (`event`, text mode: as a line before the membership) and the
/// membership after it.
fn print_membership(output: OutputFormat, event: Option<String>, response: &MembershipResponse) {
    if output.is_json() {
        print_json(&json!({
            "event": event,
            "voters": members_json(&response.voters),
            "learners": members_json(&response.learners),
            "log_index": response.log_index,
        }));
        return;
    }
    if let Some(event) = event {
        println!("{event}");
    }
    let list = |members: &[Member]| {
        members
            .iter()
            .map(|m| format!("{}@{}", m.node_id, m.rpc_addr))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("voters:   {}", list(&response.voters));
    println!("learners: {}", list(&response.learners));
    println!("committed at raft index {}", response.log_index);
}

/// Prints a one-line outcome (text), or `{"event": ...}` (JSON).
fn print_event(output: OutputFormat, event: String) {
    if output.is_json() {
        print_json(&json!({ "event": event }));
    } else {
        println!("{event}");
    }
}

fn status_json(status: &ClusterStatusResponse) -> Value {
    json!({
        "node_id": status.node_id,
        "state": status.state,
        "term": status.term,
        "leader_id": (status.leader_id != 0).then_some(status.leader_id),
        "last_log_index": status.last_log_index,
        "committed_index": status.committed_index,
        "applied_index": status.applied_index,
        "snapshot_index": status.snapshot_index,
        "purged_index": status.purged_index,
        "membership_log_index": status.membership_log_index,
        "membership_committed": status.membership_committed,
        "lowest_offset": status.lowest_offset,
        "next_offset": status.next_offset,
        "members": status.members.iter().filter_map(|member| {
            let m = member.member.as_ref()?;
            Some(json!({
                "node_id": m.node_id,
                "rpc_addr": m.rpc_addr,
                "role": if member.is_voter { "voter" } else { "learner" },
                "is_leader": member.is_leader,
                "matched_index": member.matched_index,
                "lag": member.lag,
            }))
        }).collect::<Vec<_>>(),
    })
}

fn print_status(output: OutputFormat, status: &ClusterStatusResponse) {
    if output.is_json() {
        print_json(&status_json(status));
        return;
    }
    println!(
        "node {} ({}) term {} leader {}",
        status.node_id,
        status.state,
        status.term,
        if status.leader_id == 0 {
            "none".to_owned()
        } else {
            status.leader_id.to_string()
        }
    );
    println!(
        "raft log: last {} committed {} applied {} snapshot {} purged {}; membership at {} ({})",
        status.last_log_index,
        status.committed_index,
        status.applied_index,
        status.snapshot_index,
        status.purged_index,
        status.membership_log_index,
        if status.membership_committed {
            "committed"
        } else {
            "change in flight"
        }
    );
    println!(
        "user log offsets: lowest {} next {}",
        status.lowest_offset, status.next_offset
    );
    println!(
        "{:<16} {:<28} {:<8} {:<7} {:>10} {:>8}",
        "NODE", "ADDRESS", "ROLE", "LEADER", "MATCHED", "LAG"
    );
    for member in &status.members {
        let Some(m) = &member.member else { continue };
        println!(
            "{:<16} {:<28} {:<8} {:<7} {:>10} {:>8}",
            m.node_id,
            m.rpc_addr,
            if member.is_voter { "voter" } else { "learner" },
            if member.is_leader { "*" } else { "" },
            member.matched_index,
            member.lag
        );
    }
}

/// Runs `proglog cluster ...`.
pub async fn run(
    connection: &ConnectionArgs,
    output: OutputFormat,
    args: ClusterArgs,
) -> Result<(), CliError> {
    match args.command {
        ClusterCommand::Status => {
            let mut admin = admin_at(connection, &connection.addr).await?;
            print_status(
                output,
                &admin
                    .cluster_status(ClusterStatusRequest {})
                    .await?
                    .into_inner(),
            );
        }
        ClusterCommand::Init { if_needed } => {
            let mut admin = admin_at(connection, &connection.addr).await?;
            let info = admin.node_info(NodeInfoRequest {}).await?.into_inner();
            if info.has_raft_state && if_needed {
                print_event(
                    output,
                    format!(
                        "node {} already has Raft state; nothing to do",
                        info.node_id
                    ),
                );
                return Ok(());
            }
            admin
                .initialize(InitializeRequest { members: vec![] })
                .await?;
            print_event(
                output,
                format!(
                    "initialized a cluster with node {} ({}) as its first voter",
                    info.node_id, info.rpc_addr
                ),
            );
        }
        ClusterCommand::Add { node_addr, learner } => {
            let info = admin_at(connection, &node_addr)
                .await?
                .node_info(NodeInfoRequest {})
                .await?
                .into_inner();
            let mut leader = leader_admin(connection).await?;
            let status = leader
                .cluster_status(ClusterStatusRequest {})
                .await?
                .into_inner();
            let known = status
                .members
                .iter()
                .find(|m| m.member.as_ref().is_some_and(|m| m.node_id == info.node_id));
            if known.is_none() {
                let member = Member {
                    node_id: info.node_id,
                    rpc_addr: info.rpc_addr.clone(),
                };
                // The leader answers once the learner caught up: the long part of `add`.
                let waiting = spinner(&format!(
                    "adding node {} as a learner and waiting until it caught up",
                    info.node_id
                ));
                let response = leader
                    .add_learner(AddLearnerRequest {
                        member: Some(member),
                        wait_caught_up: true,
                    })
                    .await;
                waiting.finish_and_clear();
                let response = response?.into_inner();
                let added = format!(
                    "added node {} ({}) as a learner",
                    info.node_id, info.rpc_addr
                );
                if learner {
                    print_membership(output, Some(added), &response);
                    return Ok(());
                }
                if !output.is_json() {
                    println!("{added}");
                }
            } else if known.is_some_and(|m| m.is_voter) || learner {
                print_event(output, format!("node {} is already a member", info.node_id));
                return Ok(());
            }
            let response = leader
                .promote_voter(PromoteVoterRequest {
                    node_id: info.node_id,
                })
                .await?
                .into_inner();
            let promoted = format!("promoted node {} to voter", info.node_id);
            print_membership(output, Some(promoted), &response);
        }
        ClusterCommand::Promote { node_id } => {
            let response = leader_admin(connection)
                .await?
                .promote_voter(PromoteVoterRequest { node_id })
                .await?;
            let event = format!("promoted node {node_id} to voter");
            print_membership(output, Some(event), &response.into_inner());
        }
        ClusterCommand::Remove { node_id } => {
            let response = leader_admin(connection)
                .await?
                .remove_node(RemoveNodeRequest { node_id })
                .await?;
            let event = format!("removed node {node_id}");
            print_membership(output, Some(event), &response.into_inner());
        }
        ClusterCommand::Transfer { node_id } => {
            leader_admin(connection)
                .await?
                .transfer_leadership(TransferLeadershipRequest {
                    to_node_id: node_id,
                })
                .await?;
            print_event(
                output,
                format!("asked the leader to hand leadership to node {node_id}"),
            );
        }
    }
    Ok(())
}
