//! `proglog-operator`: runs the controller.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
