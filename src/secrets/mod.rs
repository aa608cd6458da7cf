//! Repository secrets: stored per repository, encrypted at rest with
//! ChaCha20-Poly1305 under `GREENLIGHT_SECRET_KEY` (never stored beside the
//! data), handed only to steps that ask for them, never to pull requests from
//! forks, and masked in everything that leaves greenlight (see [`Masker`]).

mod ansi;
mod forms;
mod mask;

pub use ansi::strip_ansi;
pub use mask::{DECODE_ROUNDS, MASK, MIN_SECRET_BYTES, Masker};

use crate::ids::RepoId;
use crate::store::{Store, StoreError};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A secret's settings, as Drone's API shows them (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// Name (`from_secret: NAME`).
    pub name: String,
    /// Whether pull requests from the repository itself may use it
    /// (Drone's flag; forks never may).
    pub pull_request: bool,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    info: SecretInfo,
    nonce: String,
    data: String,
}

/// Why a secret operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No key is configured.
    #[error("this greenlight has no secret store: set GREENLIGHT_SECRET_KEY")]
    NoKey,
    /// The name is not usable.
    #[error("secret names are letters, digits, `_` and `-`, got {0:?}")]
    BadName(String),
    /// The value is too short to mask safely.
    #[error("secret values under {MIN_SECRET_BYTES} bytes are refused: masking them would blank ordinary text in every log")]
    TooShort,
    /// Stored data could not be decrypted (wrong key, or tampered with).
    #[error("secret {0:?} cannot be decrypted with this GREENLIGHT_SECRET_KEY")]
    Undecryptable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key secrets are sealed with.
#[derive(Clone)]
pub struct SecretKey(Arc<Key>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl SecretKey {
    /// Reads a 32-byte key given as 64 hex digits or base64.
    pub fn parse(text: &SecretString) -> Result<Self, String> {
        let raw = text.expose_secret().trim();
        let bytes = hex::decode(raw).ok().or_else(|| base64::engine::general_purpose::STANDARD.decode(raw).ok());
        match bytes {
            Some(b) if b.len() == 32 => Ok(Self(Arc::new(*Key::from_slice(&b)))),
            _ => Err("must be 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)".to_string()),
        }
    }

    /// Encrypts `plain` (ChaCha20-Poly1305, a random nonce) bound to
    /// `context`, which is authenticated, not secret: a sealed value moved
    /// to another key name does not open. Returns nonce and ciphertext, base64.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> (String, String) {
        let nonce: [u8; 12] = rand::random();
        let sealed = ChaCha20Poly1305::new(&self.0)
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: context })
            .expect("encryption cannot fail");
        let b64 = base64::engine::general_purpose::STANDARD;
        (b64.encode(nonce), b64.encode(sealed))
    }

    /// Decrypts what [`SecretKey::seal`] made with the same `context`;
    /// `None` when it was made otherwise or altered.
    pub fn open(&self, nonce: &str, data: &str, context: &[u8]) -> Option<Vec<u8>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let (nonce, data) = (b64.decode(nonce).ok()?, b64.decode(data).ok()?);
        if nonce.len() != 12 {
            return None;
        }
        ChaCha20Poly1305::new(&self.0).decrypt(Nonce::from_slice(&nonce), Payload { msg: &data, aad: context }).ok()
    }
}

/// Secrets of every repository.
#[derive(Clone)]
pub struct SecretStore {
    store: Store,
    key: Option<SecretKey>,
}

fn aad(repo: RepoId, name: &str) -> Vec<u8> {
    format!("greenlight secret {repo}/{name}").into_bytes()
}

/// Checks a secret name.
pub fn valid_name(name: &str) -> Result<(), SecretError> {
    if !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Ok(())
    } else {
        Err(SecretError::BadName(name.to_string()))
    }
}

impl SecretStore {
    /// Secrets kept in `store`; without a key it holds nothing and says why.
    pub fn new(store: Store, key: Option<SecretKey>) -> Self {
        Self { store, key }
    }

    fn key(&self) -> Result<&SecretKey, SecretError> {
        self.key.as_ref().ok_or(SecretError::NoKey)
    }

    /// Creates or replaces a secret.
    pub async fn put(&self, repo: RepoId, info: &SecretInfo, value: &SecretString) -> Result<(), SecretError> {
        valid_name(&info.name)?;
        if value.expose_secret().len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        let (nonce, data) = self.key()?.seal(value.expose_secret().as_bytes(), &aad(repo, &info.name));
        let record = Sealed { info: info.clone(), nonce, data };
        let json = serde_json::to_string(&record).expect("secrets serialize");
        Ok(self.store.put_sealed_secret(repo, &info.name, &json).await?)
    }

    async fn sealed(&self, repo: RepoId, name: &str) -> Result<Option<Sealed>, SecretError> {
        let raw = self.store.sealed_secret(repo, name).await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// A secret's settings.
    pub async fn info(&self, repo: RepoId, name: &str) -> Result<Option<SecretInfo>, SecretError> {
        Ok(self.sealed(repo, name).await?.map(|s| s.info))
    }

    /// Every secret's settings, by name.
    pub async fn list(&self, repo: RepoId) -> Result<Vec<SecretInfo>, SecretError> {
        let all = self.store.sealed_secrets(repo).await?;
        let mut infos: Vec<SecretInfo> = all.values().filter_map(|r| serde_json::from_str::<Sealed>(r).ok()).map(|s| s.info).collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    /// A secret's settings and value.
    pub async fn reveal(&self, repo: RepoId, name: &str) -> Result<Option<(SecretInfo, SecretString)>, SecretError> {
        let Some(sealed) = self.sealed(repo, name).await? else {
            return Ok(None);
        };
        let undecryptable = || SecretError::Undecryptable(name.to_string());
        let plain = self.key()?.open(&sealed.nonce, &sealed.data, &aad(repo, name)).ok_or_else(undecryptable)?;
        let text = String::from_utf8(plain).map_err(|_| undecryptable())?;
        Ok(Some((sealed.info, SecretString::from(text))))
    }

    /// Deletes a secret; false when there was none.
    pub async fn delete(&self, repo: RepoId, name: &str) -> Result<bool, SecretError> {
        Ok(self.store.remove_secret(repo, name).await?)
    }
}
