//! `proglog-node`: runs one ProgLog log node.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
