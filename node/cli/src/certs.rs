//! `proglog certs --out DIR`: writes the development CA, certificates and ACL; with
//! `--client NAME --ca-cert F --ca-key F`, issues a client certificate for the identity NAME from
//! an existing CA instead (e.g. a cluster's CA Secret), for an application to connect with.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::CliError;

/// Arguments of `proglog certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write into (created if missing; existing files are replaced).
    #[arg(long, default_value = ".proglog/certs")]
    pub out: PathBuf,
    /// Issue only a client certificate for this identity (the ACL's subject) from --ca-cert and
    /// --ca-key, written as NAME.pem and NAME-key.pem.
    #[arg(long, value_name = "NAME", requires_all = ["ca_cert", "ca_key"])]
    pub client: Option<String>,
    /// The issuing CA's certificate (PEM), with --client.
    #[arg(long, requires = "client")]
    pub ca_cert: Option<PathBuf>,
    /// The issuing CA's private key (PEM), with --client.
    #[arg(long, requires = "client")]
    pub ca_key: Option<PathBuf>,
    /// Validity of the client certificate, in days.
    #[arg(long, default_value_t = 365, requires = "client")]
    pub days: u64,
}

/// Writes the files and lists them.
pub fn run(args: &CertsArgs) -> Result<(), CliError> {
    let written = match (&args.client, &args.ca_cert, &args.ca_key) {
        (Some(name), Some(ca_cert), Some(ca_key)) => {
            if args.days == 0 {
                return Err(CliError::Usage("--days must be at least 1".to_owned()));
            }
            let validity = Duration::from_secs(args.days * 24 * 3600);
            crate::dev_ca::write_client_cert(ca_cert, ca_key, name, validity, &args.out)?
        }
        _ => crate::dev_ca::write_dev_certs(&args.out)?,
    };
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
