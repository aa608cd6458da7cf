//! The settings greenlight keeps for itself in `GREENLIGHT_DATA_DIR`: what
//! GitHub handed over when the App was registered from the setup page (its
//! id, private key, webhook secret, OAuth client), and the secret key and
//! API token generated on a single machine's first start.
//!
//! One JSON file, readable only by its owner (mode 0600, written whole and
//! renamed into place, so a crash never leaves half a key). A file that
//! others can read is refused, as ssh refuses such a private key: it holds
//! the App's key. Environment variables and flags always win over it.

use super::{ConfigError, config_error};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file's name inside the data directory.
pub const SETTINGS_FILE: &str = "greenlight.json";

/// What the file holds; every field is optional (a first start writes only
/// the generated ones, setup adds the App's).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredSettings {
    /// The App's numeric id (as `GITHUB_APP_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<u64>,
    /// The App's slug (its URL name), for links to its pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_slug: Option<String>,
    /// The App's page on GitHub (`https://github.com/apps/SLUG`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_html_url: Option<String>,
    /// The App's private key, PEM (as `GITHUB_PRIVATE_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The webhook secret (as `GITHUB_WEBHOOK_SECRET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// The App's OAuth client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The App's OAuth client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The key repository secrets are sealed with (as `GREENLIGHT_SECRET_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// The API's admin token (as `GREENLIGHT_API_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
}

impl std::fmt::Debug for StoredSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSettings").field("app_id", &self.app_id).field("app_slug", &self.app_slug).finish_non_exhaustive()
    }
}

/// Where the file is for a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SETTINGS_FILE)
}

/// Reads the file; an absent file is empty settings.
pub fn load(data_dir: &Path) -> Result<StoredSettings, ConfigError> {
    let file = path(data_dir);
    let meta = match std::fs::metadata(&file) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StoredSettings::default()),
        Err(e) => return Err(config_error("GREENLIGHT_DATA_DIR", format!("cannot read {}: {e}", file.display()))),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(config_error(
            "GREENLIGHT_DATA_DIR",
            format!("{} holds the App's key but others may read it (mode {mode:03o}); run `chmod 600 {}`", file.display(), file.display()),
        ));
    }
    let text =
        std::fs::read_to_string(&file).map_err(|e| config_error("GREENLIGHT_DATA_DIR", format!("cannot read {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| config_error("GREENLIGHT_DATA_DIR", format!("{} is not valid: {e}", file.display())))
}

/// Writes the file whole: a temporary file created with mode 0600, synced,
/// then renamed over the old one.
pub fn save(data_dir: &Path, settings: &StoredSettings) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let file = path(data_dir);
    let partial = data_dir.join(format!(".{SETTINGS_FILE}.{}", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial)?;
    out.write_all(serde_json::to_string_pretty(settings).expect("settings serialize").as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&partial, &file)?;
    Ok(file)
}

/// 32 random bytes as 64 hex digits: a secret key, or an API token.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_settings_are_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let settings = StoredSettings { app_id: Some(7), webhook_secret: Some("w".into()), ..Default::default() };
        let file = save(dir.path(), &settings).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load(dir.path()).unwrap(), settings);
        assert_eq!(load(&dir.path().join("absent")).unwrap(), StoredSettings::default());
    }

    #[test]
    fn a_file_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = save(dir.path(), &StoredSettings::default()).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("mode 644") && error.contains("chmod 600"), "{error}");
    }
}
