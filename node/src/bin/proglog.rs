//! `proglog`: the command-line client.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
