//! `greenlight secret`: manage repository secrets from a shell. Values come
//! from standard input, so they never show in argv or shell history.

use crate::config::SecretAction;
use crate::redis_server;
use crate::secrets::{SecretInfo, SecretKey, SecretStore};
use crate::store::Store;
use anyhow::{Context, bail};
use secrecy::SecretString;
use std::io::{Read, Write};

/// Runs one `greenlight secret` action.
pub async fn run(action: SecretAction, redis_url: &str, key: SecretKey, input: &mut dyn Read, out: &mut dyn Write) -> anyhow::Result<()> {
    let pool = redis_server::pool(redis_url)?;
    let store = Store::new(pool.clone());
    let secrets = SecretStore::new(crate::store::Store::new(pool), Some(key));
    let repo_of = |slug: String| {
        let store = store.clone();
        async move {
            store
                .repo_by_slug(&slug)
                .await?
                .with_context(|| format!("greenlight has not seen repository {slug}: install the App on it first"))
        }
    };
    match action {
        SecretAction::Add { repo, name, pull_request } => {
            let repo = repo_of(repo).await?;
            let mut value = String::new();
            input.read_to_string(&mut value).context("reading the secret's value from standard input")?;
            let value = value.strip_suffix('\n').unwrap_or(&value).to_string();
            if value.is_empty() {
                bail!("no value on standard input: pipe it in, e.g. `greenlight secret add owner/repo NAME < value.txt`");
            }
            secrets.put(repo.info.id, &SecretInfo { name: name.clone(), pull_request }, &SecretString::from(value)).await?;
            writeln!(out, "secret {name} saved for {}", repo.slug())?;
        }
        SecretAction::Ls { repo } => {
            let repo = repo_of(repo).await?;
            for info in secrets.list(repo.info.id).await? {
                writeln!(out, "{}{}", info.name, if info.pull_request { " (pull requests too)" } else { "" })?;
            }
        }
        SecretAction::Rm { repo, name } => {
            let repo = repo_of(repo).await?;
            if !secrets.delete(repo.info.id, &name).await? {
                bail!("{} has no secret {name}", repo.slug());
            }
            writeln!(out, "secret {name} deleted from {}", repo.slug())?;
        }
    }
    Ok(())
}
