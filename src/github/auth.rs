//! GitHub App authentication: the App's JWT, and installation tokens cached
//! in Redis so that every greenlight process shares them.

use crate::clock::SharedClock;
use crate::ids::InstallationId;
use crate::secrets::SecretKey;
use crate::store::Store;
use chrono::{DateTime, Utc};
use octocrab::jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use secrecy::SecretString;
use serde::Serialize;

/// GitHub recommends an `iat` 60 seconds in the past, against clock drift.
pub const JWT_BACKDATE_SECS: i64 = 60;

/// GitHub refuses a JWT whose `exp` is more than 10 minutes ahead; we stay at 9.
pub const JWT_LIFETIME_SECS: i64 = 9 * 60;

/// Cached installation tokens are dropped 5 minutes before GitHub's
/// `expires_at` (tokens live one hour), so no call starts with a token about to expire.
pub const TOKEN_EXPIRY_MARGIN_SECS: i64 = 5 * 60;

#[derive(Serialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
}

/// Signs the App's JWTs. Clones share one copy of the App's key (every
/// task planning a delivery holds a client): cheap, and the key is not
/// copied around memory.
#[derive(Clone)]
pub struct AppAuth {
    app_id: u64,
    key: std::sync::Arc<EncodingKey>,
    clock: SharedClock,
}

impl AppAuth {
    /// An App identity.
    pub fn new(app_id: u64, key: EncodingKey, clock: SharedClock) -> Self {
        Self { app_id, key: std::sync::Arc::new(key), clock }
    }

    /// A fresh RS256 JWT for `/app/...` calls.
    pub fn jwt(&self) -> anyhow::Result<SecretString> {
        let now = self.clock.now().timestamp();
        let claims = Claims { iat: now - JWT_BACKDATE_SECS, exp: now + JWT_LIFETIME_SECS, iss: self.app_id.to_string() };
        let token = encode(&Header::new(Algorithm::RS256), &claims, &self.key)?;
        Ok(SecretString::from(token))
    }
}

/// What marks a cached token sealed with the secret key: `sealed:NONCE:DATA`.
const SEALED_PREFIX: &str = "sealed:";

/// Installation tokens shared through Redis by every process, sealed with
/// the secret key when one is set (`GREENLIGHT_SECRET_KEY`), as repository
/// secrets are: a copy of Redis (a backup, a replica, a stray `MONITOR`)
/// then holds no token that works.
#[derive(Clone)]
pub struct TokenCache {
    store: Store,
    clock: SharedClock,
    key: Option<SecretKey>,
}

/// What a sealed token is bound to: its installation and scope.
fn token_context(installation: InstallationId, scope: &str) -> Vec<u8> {
    format!("installation-token:{installation}:{scope}").into_bytes()
}

impl TokenCache {
    /// A cache kept in `store`, sealing tokens with `key` when given.
    pub fn new(store: Store, clock: SharedClock, key: Option<SecretKey>) -> Self {
        Self { store, clock, key }
    }

    /// The cached token of an installation and scope (empty: the whole
    /// installation), if one is still fresh. A cached value this process
    /// cannot open (another key, or none) is a miss: a new token is minted.
    pub async fn get(&self, installation: InstallationId, scope: &str) -> anyhow::Result<Option<SecretString>> {
        let Some(cached) = self.store.cached_token(installation, scope).await? else { return Ok(None) };
        let opened = match (cached.strip_prefix(SEALED_PREFIX), &self.key) {
            (None, None) => Some(cached),
            (Some(sealed), Some(key)) => sealed
                .split_once(':')
                .and_then(|(nonce, data)| key.open(nonce, data, &token_context(installation, scope)))
                .and_then(|plain| String::from_utf8(plain).ok()),
            _ => None,
        };
        Ok(opened.map(SecretString::from))
    }

    /// Keeps a token until 5 minutes before it expires.
    pub async fn put(
        &self,
        installation: InstallationId,
        scope: &str,
        token: &SecretString,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        use secrecy::ExposeSecret;
        let ttl_ms = (expires_at - self.clock.now()).num_milliseconds() - TOKEN_EXPIRY_MARGIN_SECS * 1000;
        if ttl_ms <= 0 {
            return Ok(());
        }
        let ttl = std::time::Duration::from_millis(ttl_ms as u64);
        let value = match &self.key {
            Some(key) => {
                let (nonce, data) = key.seal(token.expose_secret().as_bytes(), &token_context(installation, scope));
                format!("{SEALED_PREFIX}{nonce}:{data}")
            }
            None => token.expose_secret().to_string(),
        };
        Ok(self.store.cache_token(installation, scope, &value, ttl).await?)
    }

    /// Forgets a token GitHub refused.
    pub async fn invalidate(&self, installation: InstallationId, scope: &str) -> anyhow::Result<()> {
        Ok(self.store.forget_token(installation, scope).await?)
    }
}
