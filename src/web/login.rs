//! A login screen that takes the admin token once and gives the browser a
//! session instead: an opaque id in a cookie (`HttpOnly`, `SameSite=Lax`,
//! `Secure` when the public URL is https) naming a Redis record that
//! expires, so the token never sits in the browser. Logout ends the session.

use crate::api::{ApiState, SESSION_COOKIE, check_session_change, session_of};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::time::Duration;

/// How long a login session lasts (its cookie and its Redis record): a
/// working day, so a forgotten browser is not logged in for weeks.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Where `next` is followed to, when it is anything else.
const HOME: &str = "/";

/// The query of the login form: where to go afterwards.
#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// The login form: the token, and where to go afterwards.
#[derive(Deserialize)]
pub struct Login {
    token: String,
    next: Option<String>,
}

/// The logout form: the session's CSRF token.
#[derive(Deserialize)]
pub struct Logout {
    csrf: Option<String>,
}

/// Only a path of this site is followed after login (no open redirect):
/// one `/`, then no second `/` or `\` (browsers read `/\host` as `//host`),
/// and only visible ASCII (browsers drop tabs and newlines, so `/\t/host`
/// would become `//host`). Anything else goes home.
pub fn safe_next(next: Option<String>) -> String {
    next.filter(|n| {
        let bytes = n.as_bytes();
        bytes.first() == Some(&b'/')
            && !matches!(bytes.get(1), Some(b'/' | b'\\'))
            && bytes.iter().all(|b| b.is_ascii_graphic() && *b != b'\\')
    })
    .unwrap_or_else(|| HOME.to_string())
}

fn form_page(next: &str, error: Option<&str>) -> String {
    let error = error.map(|e| format!("<p class=\"error\">{}</p>", super::html::escape(e))).unwrap_or_default();
    super::html::page(
        "Log in",
        &format!(
            "<h1>Log in</h1>{error}<p>This repository is private. Enter the greenlight API token (<code>GREENLIGHT_API_TOKEN</code>).</p>\
             <form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
             <label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label> <button type=\"submit\">Log in</button></form>",
            super::html::escape(next)
        ),
    )
}

/// The session cookie's attributes; `value` empty and `max_age` 0 clear it.
fn session_cookie(public_url: &str, value: &str, max_age: Duration) -> String {
    let secure = if public_url.starts_with("https://") { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", max_age.as_secs())
}

/// GET /login
pub async fn form(Query(q): Query<Next>) -> Html<String> {
    Html(form_page(&safe_next(q.next), None))
}

/// POST /login: a right token starts a session and goes on; a wrong one says so.
pub async fn submit(State(state): State<ApiState>, Form(login): Form<Login>) -> Response {
    let next = safe_next(login.next);
    if !crate::api::is_admin_token(&state, login.token.trim()) {
        return (StatusCode::UNAUTHORIZED, Html(form_page(&next, Some("That token is not right.")))).into_response();
    }
    match state.store.create_session(SESSION_TTL).await {
        Ok(session) => {
            ([(header::SET_COOKIE, session_cookie(&state.public_url, &session.id.0, SESSION_TTL))], Redirect::to(&next)).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {e}")).into_response(),
    }
}

/// POST /logout (from a page of this site, with its CSRF token): ends the
/// session and clears the cookie.
pub async fn logout(State(state): State<ApiState>, headers: HeaderMap, Form(form): Form<Logout>) -> Response {
    let session = match session_of(&state, &headers).await {
        Ok(session) => session,
        Err(e) => return e.into_response(),
    };
    if let Some(session) = session {
        if let Err(e) = check_session_change(&headers, &state.public_url, &session, form.csrf.as_deref()) {
            return (StatusCode::FORBIDDEN, e.to_string()).into_response();
        }
        if let Err(e) = state.store.end_session(&session.id).await {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {e}")).into_response();
        }
    }
    ([(header::SET_COOKIE, session_cookie(&state.public_url, "", Duration::ZERO))], Redirect::to(HOME)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_followed_only_when_it_is_a_path_of_this_site() {
        for bad in ["/\\evil.example/x", "//evil.example", "https://evil.example", "/\t/evil.example", "evil", "/a\\b", "/é"] {
            assert_eq!(safe_next(Some(bad.to_string())), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some("/acme/widget/1?x=%2F%2F".to_string())), "/acme/widget/1?x=%2F%2F");
    }

    #[test]
    fn the_session_cookie_is_secure_when_the_public_url_is_https() {
        let https = session_cookie("https://ci.example", "abc", SESSION_TTL);
        let http = session_cookie("http://ci.example", "abc", SESSION_TTL);

        assert_eq!(https, "greenlight_session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200; Secure");
        assert!(!http.contains("Secure"));
    }
}
