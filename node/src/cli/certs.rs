//! `proglog certs --out DIR`: writes the development CA, certificates and ACL.

use std::path::PathBuf;

use clap::Args;

use super::CliError;

/// Arguments of `proglog certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write into (created if missing; existing files are replaced).
    #[arg(long, default_value = ".proglog/certs")]
    pub out: PathBuf,
}

/// Writes the files and lists them.
pub fn run(args: &CertsArgs) -> Result<(), CliError> {
    for path in crate::certs::write_dev_certs(&args.out)? {
        println!("{}", path.display());
    }
    Ok(())
}
