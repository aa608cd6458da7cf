//! The store's one error type, so that callers branch on what happened
//! (Redis unreachable: retry later; a corrupt record: report and move on)
//! instead of on Redis's error kinds.

/// Why a read or write of build state failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis failed or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No connection could be had from the pool in time.
    #[error("redis pool: {0}")]
    Pool(String),
    /// The log store (object storage holding finished logs) failed or
    /// could not be reached.
    #[error("log store: {0}")]
    LogStore(String),
    /// A record does not parse: written by another version, or damaged.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// The Redis key.
        key: String,
        /// What serde found wrong.
        reason: String,
    },
}

impl StoreError {
    /// Whether trying again later may succeed: Redis being down, busy or
    /// out of memory passes (every Redis failure is treated so: work is
    /// retried rather than dropped); a corrupt record stays corrupt.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Redis(_) | StoreError::Pool(_) | StoreError::LogStore(_) => true,
            StoreError::Corrupt { .. } => false,
        }
    }
}

impl From<crate::redis_pool::PoolError> for StoreError {
    fn from(e: crate::redis_pool::PoolError) -> Self {
        match e {
            crate::redis_pool::PoolError::Backend(e) => StoreError::Redis(e),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

/// Results of the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// Parses a JSON record read from `key`.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { key: key.to_string(), reason: e.to_string() })
}
