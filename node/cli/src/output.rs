//! How the CLI prints results: `--output text` (for people, the default) or `--output json`
//! (for scripts: one JSON object per line for streams of records, one object otherwise), and the
//! progress bars of long operations, drawn on stderr only when it is a terminal so that neither
//! a pipe nor `--output json` ever sees them.

use std::time::Duration;

use base64::Engine;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

/// The `--output` format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON (one object per line for records).
    Json,
}

impl OutputFormat {
    /// Whether results are printed as JSON.
    pub fn is_json(self) -> bool {
        self == Self::Json
    }
}

/// Prints `value` as one line of JSON on stdout.
pub fn print_json(value: &Value) {
    println!("{value}");
}

/// A record as JSON: `value` when it is UTF-8 text, else `value_base64` (standard alphabet).
pub fn record_json(offset: u64, value: &[u8]) -> Value {
    match std::str::from_utf8(value) {
        Ok(text) => json!({ "offset": offset, "value": text }),
        Err(_) => json!({
            "offset": offset,
            "value_base64": base64::engine::general_purpose::STANDARD.encode(value),
        }),
    }
}

/// A progress bar towards `total` items on stderr (hidden unless stderr is a terminal).
pub fn progress_bar(total: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_owned());
    bar
}

/// A spinner on stderr for a wait of unknown length (hidden unless stderr is a terminal).
pub fn spinner(message: &str) -> ProgressBar {
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    spinner.set_message(message.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_stay_text_and_binary_values_are_base64() {
        assert_eq!(
            record_json(3, b"hello").to_string(),
            r#"{"offset":3,"value":"hello"}"#
        );
        assert_eq!(
            record_json(4, &[0xff, 0x00]).to_string(),
            r#"{"offset":4,"value_base64":"/wA="}"#
        );
    }

    #[test]
    fn bars_are_hidden_when_stderr_is_not_a_terminal() {
        // Under `cargo test` stderr is captured: nothing may be drawn into the output.
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            assert!(progress_bar(10, "x").is_hidden());
            assert!(spinner("x").is_hidden());
        }
    }
}
