//! How much build history greenlight keeps: without a bound, Redis (its
//! memory) grows with every build ever run.

use super::{ConfigError, config_error};
use clap::Args;

/// Builds kept per repository unless `GREENLIGHT_KEEP_BUILDS` says otherwise.
pub const DEFAULT_KEEP_BUILDS: usize = 1000;

/// Days a build is kept unless `GREENLIGHT_KEEP_DAYS` says otherwise (as GitHub Actions).
pub const DEFAULT_KEEP_DAYS: u32 = 90;

/// The most days `GREENLIGHT_KEEP_DAYS` accepts (100 years: "forever").
pub const MAX_KEEP_DAYS: u32 = 36_500;

/// Retention settings as given.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Builds kept per repository, newest first; older ones are pruned
    /// (a branch's newest build is always kept).
    #[arg(long, env = "GREENLIGHT_KEEP_BUILDS")]
    pub keep_builds: Option<String>,
    /// Days a build is kept; older ones are pruned (a branch's newest build is always kept).
    #[arg(long, env = "GREENLIGHT_KEEP_DAYS")]
    pub keep_days: Option<String>,
}

/// Which builds are kept: the newest `keep_builds` of each repository,
/// and none older than `keep_days`, except each ref's newest build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Builds kept per repository (at least 1).
    pub keep_builds: usize,
    /// Days a build is kept (at least 1).
    pub keep_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { keep_builds: DEFAULT_KEEP_BUILDS, keep_days: DEFAULT_KEEP_DAYS }
    }
}

fn positive(variable: &'static str, raw: Option<&str>, default: u64, max: u64) -> Result<u64, ConfigError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(raw) => match raw.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(config_error(variable, format!("must be a whole number from 1 to {max}, got {raw:?}"))),
        },
    }
}

impl RetentionArgs {
    /// Validates the retention settings.
    pub fn validate(&self) -> Result<RetentionConfig, ConfigError> {
        let keep_builds = positive("GREENLIGHT_KEEP_BUILDS", self.keep_builds.as_deref(), DEFAULT_KEEP_BUILDS as u64, u32::MAX as u64)?;
        let keep_days = positive("GREENLIGHT_KEEP_DAYS", self.keep_days.as_deref(), DEFAULT_KEEP_DAYS.into(), MAX_KEEP_DAYS.into())?;
        Ok(RetentionConfig { keep_builds: keep_builds as usize, keep_days: keep_days as u32 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(builds: Option<&str>, days: Option<&str>) -> RetentionArgs {
        RetentionArgs { keep_builds: builds.map(String::from), keep_days: days.map(String::from) }
    }

    #[test]
    fn defaults_and_limits() {
        assert_eq!(args(None, Some(" ")).validate().unwrap(), RetentionConfig::default());
        assert_eq!(args(Some("3"), Some("7")).validate().unwrap(), RetentionConfig { keep_builds: 3, keep_days: 7 });
        let zero = args(Some("0"), None).validate().unwrap_err().to_string();
        assert!(zero.starts_with("GREENLIGHT_KEEP_BUILDS: must be a whole number"), "{zero}");
        let days = args(None, Some("forever")).validate().unwrap_err().to_string();
        assert!(days.starts_with("GREENLIGHT_KEEP_DAYS:") && days.contains("\"forever\""), "{days}");
        assert!(args(None, Some("36501")).validate().is_err());
    }
}
