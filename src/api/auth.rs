//! Who is asking: the admin (holding `GREENLIGHT_API_TOKEN`) or a guest.

use super::ApiState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

/// The cookie in which the build page's login keeps the token.
pub const TOKEN_COOKIE: &str = "greenlight_token";

/// The caller of an API route or page.
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    /// Whether the caller gave the admin token.
    pub admin: bool,
}

/// The token a request carries, as Drone reads it: the `Authorization`
/// header (with or without `Bearer `), `?access_token=`, or the login cookie.
pub fn presented_token(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return Some(value.strip_prefix("Bearer ").unwrap_or(value).trim().to_string());
    }
    if let Some(query) = parts.uri.query() {
        let found = query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == "access_token");
        if let Some((_, value)) = found {
            return Some(value.to_string());
        }
    }
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == TOKEN_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Whether `candidate` is the configured token (constant time).
pub fn is_admin_token(state: &ApiState, candidate: &str) -> bool {
    match &state.token {
        Some(token) => {
            let expected = token.expose_secret().as_bytes();
            expected.len() == candidate.len() && bool::from(expected.ct_eq(candidate.as_bytes()))
        }
        None => false,
    }
}

impl FromRequestParts<ApiState> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        let admin = presented_token(parts).is_some_and(|t| is_admin_token(state, &t));
        Ok(Viewer { admin })
    }
}
