//! Who is asking: the admin (holding `GREENLIGHT_API_TOKEN`, or a login
//! session of the build pages) or a guest.
//!
//! A browser sends cookies with requests other sites make, so a change
//! (restart, cancel, approve, settings, secrets) authenticated by the session
//! cookie must come from greenlight's own pages: its `Origin` (or
//! `Sec-Fetch-Site`) says so, and it carries the session's CSRF token, which
//! only greenlight's pages know. A change authenticated by the token itself
//! (`Authorization`, `?access_token=`) is a client's, not a browser's, and
//! is not asked for either.

use super::{ApiError, ApiState};
use crate::store::{Session, SessionId};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// The cookie holding a login session's id (never the token).
pub const SESSION_COOKIE: &str = "greenlight_session";

/// The header in which a page's script sends its session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The caller of an API route or page.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Whether the caller gave the admin token or a live session.
    pub admin: bool,
    /// The login session the caller came with, if any (its pages embed its CSRF token).
    pub session: Option<Session>,
}

/// Why a change authenticated by the session cookie is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CrossSite {
    /// `Origin` or `Sec-Fetch-Site` names another site.
    #[error("this request comes from another site")]
    ForeignOrigin,
    /// Neither `Origin` nor `Sec-Fetch-Site` says where it comes from.
    #[error("this request does not say where it comes from (no Origin)")]
    UnknownOrigin,
    /// The CSRF token is missing or not the session's.
    #[error("this request lacks the page's CSRF token")]
    MissingToken,
}

/// The token a request carries as a client gives it: the `Authorization`
/// header (with or without `Bearer `) or `?access_token=`.
pub fn presented_token(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return Some(value.strip_prefix("Bearer ").unwrap_or(value).trim().to_string());
    }
    let query = parts.uri.query()?;
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == "access_token").map(|(_, v)| v.to_string())
}

/// The value of the cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether `candidate` is the configured token (constant time).
pub fn is_admin_token(state: &ApiState, candidate: &str) -> bool {
    state.token.as_deref().is_some_and(|token| token_matches(token, candidate))
}

/// Whether `candidate` is `token`, compared in constant time (the API's
/// admin token, which `/metrics` asks for too).
pub fn token_matches(token: &SecretString, candidate: &str) -> bool {
    constant_time_eq(token.expose_secret(), candidate)
}

fn constant_time_eq(expected: &str, candidate: &str) -> bool {
    expected.len() == candidate.len() && bool::from(expected.as_bytes().ct_eq(candidate.as_bytes()))
}

/// `scheme://host[:port]` of a URL, as browsers send it in `Origin`.
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..].find('/').map_or(url, |end| &url[..after_scheme + end])
}

/// Whether a request comes from greenlight's own pages: `Sec-Fetch-Site`
/// is `same-origin`, or `Origin` is the public URL's (or the `Host` the
/// browser asked for).
pub fn same_origin(headers: &HeaderMap, public_url: &str) -> Result<(), CrossSite> {
    let text = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return if site == "same-origin" { Ok(()) } else { Err(CrossSite::ForeignOrigin) };
    }
    let Some(origin) = text(header::ORIGIN) else { return Err(CrossSite::UnknownOrigin) };
    let host_matches = text(header::HOST).is_some_and(|host| origin.split_once("://").is_some_and(|(_, rest)| rest == host));
    if origin == origin_of(public_url) || host_matches { Ok(()) } else { Err(CrossSite::ForeignOrigin) }
}

/// Checks a change that a session cookie authenticates (see the module doc).
pub fn check_session_change(headers: &HeaderMap, public_url: &str, session: &Session, csrf: Option<&str>) -> Result<(), CrossSite> {
    same_origin(headers, public_url)?;
    match csrf {
        Some(token) if constant_time_eq(&session.csrf.0, token) => Ok(()),
        _ => Err(CrossSite::MissingToken),
    }
}

/// The live session a request's cookie names.
pub async fn session_of(state: &ApiState, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(id) = cookie(headers, SESSION_COOKIE).filter(|id| !id.is_empty()) else { return Ok(None) };
    Ok(state.store.session(&SessionId(id.to_string())).await?)
}

impl FromRequestParts<ApiState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        if let Some(token) = presented_token(parts) {
            return Ok(Viewer { admin: is_admin_token(state, &token), session: None });
        }
        let Some(session) = session_of(state, &parts.headers).await? else { return Ok(Viewer { admin: false, session: None }) };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let csrf = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            check_session_change(&parts.headers, &state.public_url, &session, csrf)
                .map_err(|e| ApiError(StatusCode::FORBIDDEN, e.to_string()))?;
        }
        Ok(Viewer { admin: true, session: Some(session) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), v.parse().unwrap())).collect()
    }

    #[test]
    fn a_change_must_come_from_this_sites_pages() {
        let public = "https://ci.example/";

        assert_eq!(same_origin(&headers(&[("sec-fetch-site", "same-origin")]), public), Ok(()));
        assert_eq!(same_origin(&headers(&[("sec-fetch-site", "same-site")]), public), Err(CrossSite::ForeignOrigin));
        assert_eq!(same_origin(&headers(&[("origin", "https://ci.example")]), public), Ok(()));
        assert_eq!(same_origin(&headers(&[("origin", "http://10.0.0.5:3000"), ("host", "10.0.0.5:3000")]), public), Ok(()));
        assert_eq!(
            same_origin(&headers(&[("origin", "https://evil.example"), ("host", "ci.example")]), public),
            Err(CrossSite::ForeignOrigin)
        );
        assert_eq!(same_origin(&headers(&[("origin", "null")]), public), Err(CrossSite::ForeignOrigin));
        assert_eq!(same_origin(&headers(&[]), public), Err(CrossSite::UnknownOrigin));
        assert_eq!(origin_of("http://greenlight.test"), "http://greenlight.test");
    }
}
