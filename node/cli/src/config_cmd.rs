//! `proglog config set-context|use-context|get-contexts|view|path`: edits and shows the config
//! file of [`super::context`], in the manner of `kubectl config`.
//!
//! `set-context NAME` takes its values from the connection flags given with it (`--addr`,
//! `--ca`, `--cert`, `--key`, `--server-name`), stores certificate paths as absolute paths (so
//! the context works from any directory) after checking that the files exist, and keeps what
//! the flags do not set.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use super::context::{ConfigFile, Context};
use super::output::{OutputFormat, print_json};
use super::{CliError, ConnectionFlags};

/// `proglog config ...`
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Which change to the config file, or which view of it.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The config subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Create or update a context from --addr, --ca, --cert, --key and --server-name.
    SetContext {
        /// The context's name.
        name: String,
        /// Also make it the current context.
        #[arg(long = "use")]
        use_it: bool,
    },
    /// Make NAME the current context.
    UseContext {
        /// The context's name.
        name: String,
    },
    /// List the contexts (the current one marked with `*`).
    GetContexts,
    /// Show the connection this invocation would use (flags, environment and context merged).
    View,
    /// Print the config file's path.
    Path,
}

/// Runs `proglog config ...`.
pub fn run(
    flags: &ConnectionFlags,
    output: OutputFormat,
    args: ConfigArgs,
) -> Result<(), CliError> {
    let path = flags.config_path()?;
    let mut config = ConfigFile::load(&path)?;
    match args.command {
        ConfigCommand::SetContext { name, use_it } => {
            let update = Context {
                addr: flags.addr.clone(),
                ca: absolute(flags.ca.as_deref())?,
                cert: absolute(flags.cert.as_deref())?,
                key: absolute(flags.key.as_deref())?,
                server_name: flags.server_name.clone(),
            };
            config
                .contexts
                .entry(name.clone())
                .or_default()
                .merge(update);
            if use_it || config.current_context.is_none() {
                config.current_context = Some(name.clone());
            }
            config.save(&path)?;
            println!("context {name:?} saved in {}", path.display());
        }
        ConfigCommand::UseContext { name } => {
            if !config.contexts.contains_key(&name) {
                return Err(CliError::Usage(format!(
                    "no context named {name:?} in {} (known: {})",
                    path.display(),
                    config.known()
                )));
            }
            config.current_context = Some(name.clone());
            config.save(&path)?;
            println!("switched to context {name:?}");
        }
        ConfigCommand::GetContexts => {
            let current = config.current_context.as_deref();
            if output.is_json() {
                print_json(&json!({
                    "current_context": current,
                    "contexts": config.contexts.iter().map(|(name, c)| json!({
                        "name": name,
                        "addr": c.addr,
                    })).collect::<Vec<_>>(),
                }));
            } else {
                for (name, context) in &config.contexts {
                    let mark = if Some(name.as_str()) == current {
                        "*"
                    } else {
                        " "
                    };
                    let addr = context.addr.as_deref().unwrap_or("-");
                    println!("{mark} {name}\t{addr}");
                }
            }
        }
        ConfigCommand::View => {
            let context = config
                .select(flags.context.as_deref())?
                .map(|(name, _)| name.to_owned());
            let resolved = flags.resolve()?;
            let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
            if output.is_json() {
                print_json(&json!({
                    "config": path.display().to_string(),
                    "context": context,
                    "addr": resolved.addr,
                    "ca": show(&resolved.ca),
                    "cert": show(&resolved.cert),
                    "key": show(&resolved.key),
                    "server_name": resolved.server_name,
                }));
            } else {
                let or_none = |v: Option<String>| v.unwrap_or_else(|| "(none)".to_owned());
                println!("config:      {}", path.display());
                println!("context:     {}", or_none(context));
                println!("addr:        {}", resolved.addr);
                println!("ca:          {}", or_none(show(&resolved.ca)));
                println!("cert:        {}", or_none(show(&resolved.cert)));
                println!("key:         {}", or_none(show(&resolved.key)));
                println!("server-name: {}", or_none(resolved.server_name));
            }
        }
        ConfigCommand::Path => println!("{}", path.display()),
    }
    Ok(())
}

/// `path` made absolute, after checking that it exists (a typo should fail now, not at the
/// next connection).
fn absolute(path: Option<&Path>) -> Result<Option<PathBuf>, CliError> {
    path.map(|p| {
        std::fs::canonicalize(p).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))
    })
    .transpose()
}
