//! `greenlight config`: one line per setting of `serve`, saying where its
//! value comes from, so "which key is this process using?" has an answer
//! without reading the environment of a running service.
//!
//! Sources are clap's (`flag`, `variable`, `default`), then the data
//! directory's settings file (`file`), else `unset`. Values of secret
//! settings (the ones whose variables `--help` hides) are never printed.

use super::StoredSettings;
use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// Where a setting's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Its command-line flag.
    Flag,
    /// Its environment variable.
    Variable,
    /// The settings file in the data directory (setup or a first start wrote it).
    File,
    /// The built-in default.
    Default,
    /// Nowhere: the setting is off or derived.
    Unset,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Variable => "variable",
            Source::File => "file",
            Source::Default => "default",
            Source::Unset => "unset",
        }
    }
}

/// One setting as `greenlight config` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingLine {
    /// The environment variable naming it.
    pub name: String,
    /// Where its value comes from.
    pub source: Source,
    /// Its value, or `(hidden)` for a secret that is set.
    pub value: String,
}

impl std::fmt::Display for SettingLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<32} {:<9} {}", self.name, self.source.as_str(), self.value)
    }
}

/// What the settings file holds for a variable, if it can hold it.
fn stored_value(stored: &StoredSettings, variable: &str) -> Option<String> {
    match variable {
        "GITHUB_APP_ID" => stored.app_id.map(|id| id.to_string()),
        "GITHUB_PRIVATE_KEY" => stored.private_key.clone(),
        "GITHUB_WEBHOOK_SECRET" => stored.webhook_secret.clone(),
        "GREENLIGHT_SECRET_KEY" => stored.secret_key.clone(),
        "GREENLIGHT_API_TOKEN" => stored.api_token.clone(),
        _ => None,
    }
}

/// The settings of `command` (the `config` subcommand, which takes the same
/// arguments as `serve`) as parsed into `matches`, with `stored` behind them.
pub fn settings(command: &Command, matches: &ArgMatches, stored: &StoredSettings) -> Vec<SettingLine> {
    let mut lines = Vec::new();
    for arg in command.get_arguments() {
        let Some(variable) = arg.get_env().and_then(|v| v.to_str()) else { continue };
        let id = arg.get_id().as_str();
        let given: Option<String> = matches
            .get_raw(id)
            .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>().join(","))
            .filter(|v| !v.trim().is_empty());
        let (source, value) = match (matches.value_source(id), given) {
            (Some(ValueSource::CommandLine), Some(v)) => (Source::Flag, Some(v)),
            (Some(ValueSource::EnvVariable), Some(v)) => (Source::Variable, Some(v)),
            (source, given) => match stored_value(stored, variable) {
                Some(v) => (Source::File, Some(v)),
                None if source == Some(ValueSource::DefaultValue) => (Source::Default, given),
                None => (Source::Unset, None),
            },
        };
        let value = match value {
            None => String::new(),
            Some(_) if arg.is_hide_env_values_set() || variable == "GITHUB_PRIVATE_KEY" => "(hidden)".to_string(),
            Some(v) => v,
        };
        lines.push(SettingLine { name: variable.to_string(), source, value });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn config_lines(args: &[&str], stored: &StoredSettings) -> Vec<SettingLine> {
        let cli = crate::config::Cli::command();
        let matches = cli.clone().try_get_matches_from(args).unwrap();
        let sub = cli.find_subcommand("config").unwrap().clone();
        settings(&sub, matches.subcommand_matches("config").unwrap(), stored)
    }

    fn line<'a>(lines: &'a [SettingLine], name: &str) -> &'a SettingLine {
        lines.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("no line for {name}"))
    }

    #[test]
    fn flags_defaults_and_the_file_are_told_apart_and_secrets_hidden() {
        let stored = StoredSettings {
            app_id: Some(99),
            webhook_secret: Some("whsec-from-file".into()),
            api_token: Some("token-from-the-file-0123".into()),
            ..Default::default()
        };
        let lines = config_lines(&["greenlight", "config", "--addr", "127.0.0.1:4000"], &stored);
        assert_eq!(line(&lines, "GREENLIGHT_ADDR").source, Source::Flag);
        assert_eq!(line(&lines, "GREENLIGHT_ADDR").value, "127.0.0.1:4000");
        assert_eq!(line(&lines, "GREENLIGHT_PUBLIC_URL").source, Source::Default);
        assert_eq!(line(&lines, "GITHUB_APP_ID").source, Source::File);
        assert_eq!(line(&lines, "GITHUB_APP_ID").value, "99");
        let webhook = line(&lines, "GITHUB_WEBHOOK_SECRET");
        assert_eq!((webhook.source, webhook.value.as_str()), (Source::File, "(hidden)"));
        assert_eq!(line(&lines, "GREENLIGHT_SECRET_KEY").source, Source::Unset);
        let printed = lines.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert!(!printed.contains("whsec-from-file") && !printed.contains("token-from-the-file"), "{printed}");
    }
}
