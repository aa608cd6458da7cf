//! A login screen that takes the admin token and keeps it in a cookie.

use crate::api::{ApiState, TOKEN_COOKIE};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

/// How long the login cookie lasts.
pub const COOKIE_MAX_AGE_SECS: u64 = 30 * 24 * 3600;

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
    next: Option<String>,
}

/// Only local paths are followed after login (no open redirect).
fn safe_next(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//")).unwrap_or_else(|| "/".to_string())
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

/// GET /login
pub async fn form(Query(q): Query<Next>) -> Html<String> {
    Html(form_page(&safe_next(q.next), None))
}

/// POST /login: a right token sets the cookie and goes on; a wrong one says so.
pub async fn submit(State(state): State<ApiState>, Form(login): Form<Login>) -> Response {
    let next = safe_next(login.next);
    if !crate::api::is_admin_token(&state, login.token.trim()) {
        return (axum::http::StatusCode::UNAUTHORIZED, Html(form_page(&next, Some("That token is not right.")))).into_response();
    }
    let cookie = format!("{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={COOKIE_MAX_AGE_SECS}", login.token.trim());
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}
