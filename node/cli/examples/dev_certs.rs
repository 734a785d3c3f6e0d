//! The development CA as a library, what `proglog certs` runs: writes the CA, the node's
//! certificate, the `root` and `nobody` client certificates and a dev ACL into a directory,
//! then issues one more client certificate from that CA for an application's identity.
//!
//! ```sh
//! cargo run -p proglog-cli --example dev_certs -- /tmp/demo-certs orders-service
//! ```

use std::path::PathBuf;

use proglog_cli::dev_ca::{DEV_VALIDITY, write_client_cert, write_dev_certs};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: dev_certs DIR [CLIENT_NAME]")?);
    let client = args.next().unwrap_or_else(|| "app".to_owned());

    for path in write_dev_certs(&dir)? {
        println!("wrote {}", path.display());
    }
    let issued = write_client_cert(
        &dir.join("ca.pem"),
        &dir.join("ca-key.pem"),
        &client,
        DEV_VALIDITY,
        &dir.join("users"),
    )?;
    for path in issued {
        println!("issued {}", path.display());
    }
    Ok(())
}
