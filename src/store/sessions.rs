//! Login sessions of the build pages: the browser keeps an opaque random id
//! in its cookie, never the admin token, so a leaked cookie is one session
//! that expires (and logout ends), not the token itself.
//!
//! Redis holds each session under the SHA-256 of its id (someone reading
//! Redis learns no usable cookie), with the CSRF token its pages carry, and
//! an expiry Redis enforces.

use super::{Store, StoreResult};
use redis::AsyncCommands;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The opaque value of a session cookie: 32 random bytes, hex.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(pub String);

/// The token a session's pages send back with each change they ask for.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken(pub String);

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(…)")
    }
}

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken(…)")
    }
}

/// A live session, as a request finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's id (the cookie's value).
    pub id: SessionId,
    /// What its pages must send back with a change.
    pub csrf: CsrfToken,
}

/// 32 bytes from `rand`'s thread generator (a CSPRNG seeded by the operating system), hex.
fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

fn session_key(id: &SessionId) -> String {
    format!("gl:session:{}", hex::encode(Sha256::digest(id.0.as_bytes())))
}

impl Store {
    /// Starts a session that Redis forgets after `ttl`.
    pub async fn create_session(&self, ttl: Duration) -> StoreResult<Session> {
        let session = Session { id: SessionId(random_hex()), csrf: CsrfToken(random_hex()) };
        let _: () = self.conn().await?.set_ex(session_key(&session.id), &session.csrf.0, ttl.as_secs().max(1)).await?;
        Ok(session)
    }

    /// The session a cookie names, if it is live.
    pub async fn session(&self, id: &SessionId) -> StoreResult<Option<Session>> {
        let csrf: Option<String> = self.conn().await?.get(session_key(id)).await?;
        Ok(csrf.map(|csrf| Session { id: id.clone(), csrf: CsrfToken(csrf) }))
    }

    /// Ends a session (logout).
    pub async fn end_session(&self, id: &SessionId) -> StoreResult<()> {
        Ok(self.conn().await?.del(session_key(id)).await?)
    }
}
