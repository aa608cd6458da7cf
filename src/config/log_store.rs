//! Where finished step logs are kept (`GREENLIGHT_LOG_STORE`).
//!
//! A single machine keeps them in its Redis (no new service to run); a team
//! with workers on many machines points every process at one S3-compatible
//! bucket, so Redis holds only the logs of steps still running. The `AWS_*`
//! variables are the ones every S3 tool reads, so credentials set up for
//! `aws` or MinIO's client work unchanged.

use super::{ConfigError, config_error};
use clap::Args;
use secrecy::SecretString;

/// The log store's settings as given.
#[derive(Debug, Args)]
pub struct LogStoreArgs {
    /// Where finished step logs go: unset (or `redis`) keeps them compressed
    /// in Redis; `s3://BUCKET/PREFIX` keeps them in object storage.
    #[arg(long, env = "GREENLIGHT_LOG_STORE")]
    pub log_store: Option<String>,
    /// An S3-compatible server's URL (MinIO, Garage, R2); unset: AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// The bucket's region (default us-east-1).
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// The access key id for the bucket.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub aws_access_key_id: Option<String>,
    /// The secret access key for the bucket.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub aws_secret_access_key: Option<String>,
    /// A session token, for temporary credentials.
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    pub aws_session_token: Option<String>,
}

/// Where finished step logs are kept.
#[derive(Debug, Clone, Default)]
pub enum LogStoreConfig {
    /// Compressed, in the Redis every process shares.
    #[default]
    Redis,
    /// Compressed, one object per step log in an S3-compatible bucket.
    S3(S3Config),
}

/// An S3-compatible bucket and how to reach it.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The bucket's name.
    pub bucket: String,
    /// The prefix of every object's key, without slashes at either end (may be empty).
    pub prefix: String,
    /// The server's URL when it is not AWS; `http://` ones are allowed.
    pub endpoint: Option<String>,
    /// The region (us-east-1 when unset).
    pub region: Option<String>,
    /// The access key id; unset: the instance's role, as AWS's SDKs find it.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<SecretString>,
    /// A session token for temporary credentials.
    pub session_token: Option<SecretString>,
}

impl LogStoreArgs {
    /// Validates `GREENLIGHT_LOG_STORE` and, for S3, the `AWS_*` settings.
    pub fn validate(&self) -> Result<LogStoreConfig, ConfigError> {
        let raw = match self.log_store.as_deref().map(str::trim) {
            None | Some("") | Some("redis") => return Ok(LogStoreConfig::Redis),
            Some(raw) => raw,
        };
        let Some(rest) = raw.strip_prefix("s3://") else {
            return Err(config_error("GREENLIGHT_LOG_STORE", format!("must be `redis` or s3://BUCKET/PREFIX, got {raw:?}")));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(config_error("GREENLIGHT_LOG_STORE", "names no bucket: use s3://BUCKET/PREFIX"));
        }
        let endpoint = nonempty(&self.aws_endpoint_url);
        if let Some(url) = &endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(config_error("AWS_ENDPOINT_URL", format!("must be an http:// or https:// URL, got {url:?}")));
        }
        if nonempty(&self.aws_access_key_id).is_some() != nonempty(&self.aws_secret_access_key).is_some() {
            return Err(config_error("AWS_SECRET_ACCESS_KEY", "and AWS_ACCESS_KEY_ID must be set together"));
        }
        Ok(LogStoreConfig::S3(S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint,
            region: nonempty(&self.aws_region),
            access_key_id: nonempty(&self.aws_access_key_id),
            secret_access_key: nonempty(&self.aws_secret_access_key).map(SecretString::from),
            session_token: nonempty(&self.aws_session_token).map(SecretString::from),
        }))
    }
}

fn nonempty(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(store: &str) -> LogStoreArgs {
        LogStoreArgs {
            log_store: Some(store.to_string()),
            aws_endpoint_url: None,
            aws_region: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_session_token: None,
        }
    }

    #[test]
    fn a_log_store_is_redis_or_a_bucket_and_prefix() {
        assert!(matches!(args("").validate(), Ok(LogStoreConfig::Redis)));
        assert!(matches!(args("redis").validate(), Ok(LogStoreConfig::Redis)));
        let Ok(LogStoreConfig::S3(s3)) = args("s3://logs/ci/greenlight/").validate() else { panic!("an S3 store") };
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("logs", "ci/greenlight"));
        let Ok(LogStoreConfig::S3(s3)) = args("s3://logs").validate() else { panic!("an S3 store") };
        assert_eq!(s3.prefix, "");
        for bad in ["gs://logs", "s3:///prefix", "/var/logs"] {
            let e = args(bad).validate().unwrap_err();
            assert_eq!(e.variable, "GREENLIGHT_LOG_STORE", "{bad}");
        }
        let mut half = args("s3://logs");
        half.aws_access_key_id = Some("AKIA".into());
        assert_eq!(half.validate().unwrap_err().variable, "AWS_SECRET_ACCESS_KEY");
    }
}
