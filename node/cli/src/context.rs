//! The CLI's config file of named *contexts* (like a kubeconfig): where a cluster is and which
//! CA, certificate and key reach it, so a user does not repeat five flags on every command.
//!
//! ```toml
//! current-context = "local"
//!
//! [contexts.local]
//! addr = "127.0.0.1:8400"
//! ca = "/home/me/.proglog/certs/ca.pem"
//! cert = "/home/me/.proglog/certs/root.pem"
//! key = "/home/me/.proglog/certs/root-key.pem"
//! # server-name = "logs.example.com"
//! ```
//!
//! The file is `--config`, else `$PROGLOG_CONFIG`, else `$XDG_CONFIG_HOME/proglog/config.toml`,
//! else `~/.config/proglog/config.toml`. A flag or environment variable always wins over the
//! context; relative paths in the file are relative to the file's directory. `proglog config`
//! edits it; every write replaces the file atomically (temporary file, fsync, rename, fsync of
//! the directory) so a crash never leaves half a config.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use proglog_log::durable_fs;
use serde::{Deserialize, Serialize};

use super::CliError;

/// The config file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigFile {
    /// The context used when `--context` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    /// Contexts by name.
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One cluster and the identity used to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Context {
    /// Node or Service address, HOST:PORT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// CA certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Name to verify the node's certificate against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Where the config file is when `--config`/`PROGLOG_CONFIG` are not given.
pub fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("proglog").join("config.toml"))
}

impl ConfigFile {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(CliError::Usage(format!(
                    "reading config {}: {e}",
                    path.display()
                )));
            }
        };
        let mut config: Self = toml::from_str(&text)
            .map_err(|e| CliError::Usage(format!("config {}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for context in config.contexts.values_mut() {
            context.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Replaces `path` with this config atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| CliError::Usage(format!("encoding config: {e}")))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        durable_fs::create_dir_all(dir)?;
        // A unique temporary name in the same directory: concurrent writers never share it.
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.toml.")
            .tempfile_in(dir)?;
        tmp.write_all(text.as_bytes())?;
        durable_fs::sync_file_all(tmp.as_file(), tmp.path())?;
        let tmp_path = tmp.into_temp_path();
        durable_fs::rename(&tmp_path, path)?;
        // Renamed away: nothing left for the guard to delete.
        std::mem::forget(tmp_path);
        Ok(())
    }

    /// The context named `name`, else the current one; `None` when neither is set. Naming a
    /// context that does not exist is an error that lists the ones that do.
    pub fn select(&self, name: Option<&str>) -> Result<Option<(&str, &Context)>, CliError> {
        let Some(name) = name.or(self.current_context.as_deref()) else {
            return Ok(None);
        };
        match self.contexts.get_key_value(name) {
            Some((name, context)) => Ok(Some((name.as_str(), context))),
            None => Err(CliError::Usage(format!(
                "no context named {name:?} in the config (known: {})",
                self.known()
            ))),
        }
    }

    /// The context names, comma-separated (or "none").
    pub fn known(&self) -> String {
        if self.contexts.is_empty() {
            return "none".to_owned();
        }
        self.contexts.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

impl Context {
    /// Makes relative paths relative to `dir` (the config file's directory).
    fn resolve_paths(&mut self, dir: &Path) {
        for path in [&mut self.ca, &mut self.cert, &mut self.key]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    /// Overwrites the fields that `update` sets.
    pub fn merge(&mut self, update: Context) {
        let Context {
            addr,
            ca,
            cert,
            key,
            server_name,
        } = update;
        self.addr = addr.or(self.addr.take());
        self.ca = ca.or(self.ca.take());
        self.cert = cert.or(self.cert.take());
        self.key = key.or(self.key.take());
        self.server_name = server_name.or(self.server_name.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ConfigFile {
        let mut config = ConfigFile {
            current_context: Some("local".to_owned()),
            ..ConfigFile::default()
        };
        config.contexts.insert(
            "local".to_owned(),
            Context {
                addr: Some("127.0.0.1:8400".to_owned()),
                ca: Some(PathBuf::from("/certs/ca.pem")),
                ..Context::default()
            },
        );
        config
    }

    #[test]
    fn saves_and_loads_the_same_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/config.toml");
        sample().save(&path).unwrap();
        assert_eq!(ConfigFile::load(&path).unwrap(), sample());
        // Only the config is left behind, no temporary file.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.toml")]);
    }

    #[test]
    fn a_missing_file_is_an_empty_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigFile::load(&dir.path().join("absent.toml")).unwrap();
        assert_eq!(config, ConfigFile::default());
        assert!(config.select(None).unwrap().is_none());
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[contexts.a]\nca = \"certs/ca.pem\"\n").unwrap();
        let config = ConfigFile::load(&path).unwrap();
        assert_eq!(
            config.contexts["a"].ca.as_deref(),
            Some(dir.path().join("certs/ca.pem").as_path())
        );
    }

    #[test]
    fn unknown_contexts_and_keys_are_named_in_the_error() {
        let error = sample().select(Some("prod")).unwrap_err().to_string();
        assert!(
            error.contains("\"prod\"") && error.contains("local"),
            "{error}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[contexts.a]\nadress = \"x:1\"\n").unwrap();
        let error = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("adress"), "{error}");
    }

    #[test]
    fn the_named_context_wins_over_the_current_one() {
        let mut config = sample();
        config
            .contexts
            .insert("prod".to_owned(), Context::default());
        assert_eq!(config.select(Some("prod")).unwrap().unwrap().0, "prod");
        assert_eq!(config.select(None).unwrap().unwrap().0, "local");
    }

    #[test]
    fn merge_keeps_what_the_update_does_not_set() {
        let mut context = sample().contexts["local"].clone();
        context.merge(Context {
            cert: Some(PathBuf::from("/c.pem")),
            ..Context::default()
        });
        assert_eq!(context.addr.as_deref(), Some("127.0.0.1:8400"));
        assert_eq!(context.cert.as_deref(), Some(Path::new("/c.pem")));
    }
}
