//! Pull request conversations on the fake: collaborators and their
//! permissions, issue comments, and reactions to them, as GitHub's REST API
//! documents them (collaborators: "Get repository permissions for a user";
//! issues: "Create an issue comment"; reactions: "Create reaction for an
//! issue comment").

use super::routes::{Refusal, authorized, error, invalid, refuse};
use super::{RepoHandle, Shared};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// GitHub's reaction contents.
const REACTIONS: [&str; 8] = ["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"];

/// GitHub's cap on a comment body, in characters.
const MAX_COMMENT_CHARS: usize = 65_536;

/// The login the App comments and reacts as.
pub const APP_LOGIN: &str = "greenlight-test[bot]";

/// One comment on a pull request (or issue).
#[derive(Debug, Clone)]
pub struct Comment {
    /// Its id.
    pub id: u64,
    /// `owner/name`.
    pub repo: String,
    /// The issue or pull request number.
    pub number: u64,
    /// Who wrote it.
    pub author: String,
    /// Its text.
    pub body: String,
    /// Reactions to it (`eyes`, `-1`, …), in order, at most one of each kind per user.
    pub reactions: Vec<(String, String)>,
}

/// Collaborators and comments of every repository.
#[derive(Default)]
pub(crate) struct Conversations {
    /// `owner/name` → login → role (`admin`, `maintain`, `write`, `triage`, `read`).
    pub roles: HashMap<String, HashMap<String, String>>,
    pub comments: Vec<Comment>,
}

impl RepoHandle {
    /// Gives `login` a role on the repository (`admin`, `maintain`, `write`, `triage`, `read`).
    pub fn set_role(&self, login: &str, role: &str) {
        let mut state = self.github().shared.state.lock().unwrap();
        state.conversations.roles.entry(self.slug.clone()).or_default().insert(login.to_string(), role.to_string());
    }

    /// `login` comments `body` on pull request `number`; returns the comment's id.
    pub fn comment(&self, number: u64, login: &str, body: &str) -> u64 {
        let mut state = self.github().shared.state.lock().unwrap();
        let id = 5_000_000 + state.conversations.comments.len() as u64;
        let comment =
            Comment { id, repo: self.slug.clone(), number, author: login.to_string(), body: body.to_string(), reactions: Vec::new() };
        state.conversations.comments.push(comment);
        id
    }

    /// The comments on pull request `number`, oldest first.
    pub fn comments(&self, number: u64) -> Vec<Comment> {
        let state = self.github().shared.state.lock().unwrap();
        state.conversations.comments.iter().filter(|c| c.repo == self.slug && c.number == number).cloned().collect()
    }

    /// The comments the App wrote on pull request `number`.
    pub fn replies(&self, number: u64) -> Vec<String> {
        self.comments(number).into_iter().filter(|c| c.author == APP_LOGIN).map(|c| c.body).collect()
    }

    /// The reactions on comment `id`.
    pub fn reactions(&self, id: u64) -> Vec<String> {
        let state = self.github().shared.state.lock().unwrap();
        state
            .conversations
            .comments
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.reactions.iter().map(|(_, r)| r.clone()).collect())
            .unwrap_or_default()
    }
}

/// The legacy `permission` GitHub reports beside a role: maintain counts as write, triage as read.
fn legacy_permission(role: &str) -> &'static str {
    match role {
        "admin" => "admin",
        "maintain" | "write" => "write",
        "triage" | "read" => "read",
        _ => "none",
    }
}

/// `GET /repos/{owner}/{repo}/collaborators/{username}/permission` (metadata: read).
pub(super) async fn permission(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo, user)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let slug = match authorized(&shared, &headers, &owner, &repo, ("metadata", "read")) {
        Ok(slug) => slug,
        Err(e) => return refuse(e),
    };
    let state = shared.state.lock().unwrap();
    let private = state.repos.get(&slug).is_some_and(|r| r.private);
    let role = state.conversations.roles.get(&slug).and_then(|roles| roles.get(&user)).cloned();
    // Anyone may read a public repository; a private one's strangers are not collaborators.
    let role = match (role, private) {
        (Some(role), _) => role,
        (None, false) => "read".to_string(),
        (None, true) => return error(StatusCode::NOT_FOUND, &format!("{user} is not a user")),
    };
    axum::Json(json!({
        "permission": legacy_permission(&role),
        "role_name": role,
        "user": { "login": user, "type": "User", "site_admin": false },
    }))
    .into_response()
}

/// The repository and JSON body of a write to a pull request's
/// conversation, once the token is checked (GitHub accepts either the
/// issues or the pull requests permission).
fn conversation_write(shared: &Shared, headers: &HeaderMap, owner: &str, repo: &str, body: &[u8]) -> Result<(String, Value), Refusal> {
    let slug = authorized(shared, headers, owner, repo, ("issues", "write"))
        .or_else(|_| authorized(shared, headers, owner, repo, ("pull_requests", "write")))?;
    let body = serde_json::from_slice(body).map_err(|_| (StatusCode::BAD_REQUEST, "Problems parsing JSON".to_string()))?;
    Ok((slug, body))
}

/// `POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions`:
/// 201 when new, 200 when the App had already reacted so.
pub(super) async fn react(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo, comment)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (slug, body) = match conversation_write(&shared, &headers, &owner, &repo, &body) {
        Ok(ok) => ok,
        Err(e) => return refuse(e),
    };
    let content = body["content"].as_str().unwrap_or_default().to_string();
    if !REACTIONS.contains(&content.as_str()) {
        return invalid(format!("content is not included in the list: {content:?}"));
    }
    let mut state = shared.state.lock().unwrap();
    let Some(found) = state.conversations.comments.iter_mut().find(|c| c.id == comment && c.repo == slug) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let status = if found.reactions.iter().any(|(who, what)| who == APP_LOGIN && *what == content) {
        StatusCode::OK
    } else {
        found.reactions.push((APP_LOGIN.to_string(), content.clone()));
        StatusCode::CREATED
    };
    shared.changed.notify_waiters();
    (status, axum::Json(json!({ "id": comment, "content": content, "user": { "login": APP_LOGIN } }))).into_response()
}

/// `POST /repos/{owner}/{repo}/issues/{issue_number}/comments`: 201 with the comment.
pub(super) async fn create_comment(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (slug, body) = match conversation_write(&shared, &headers, &owner, &repo, &body) {
        Ok(ok) => ok,
        Err(e) => return refuse(e),
    };
    let Some(text) = body["body"].as_str() else {
        return invalid("body wasn't supplied.".to_string());
    };
    if text.chars().count() > MAX_COMMENT_CHARS {
        return invalid(format!("body is too long (maximum is {MAX_COMMENT_CHARS} characters)"));
    }
    let mut state = shared.state.lock().unwrap();
    let id = 5_000_000 + state.conversations.comments.len() as u64;
    let comment = Comment { id, repo: slug.clone(), number, author: APP_LOGIN.to_string(), body: text.to_string(), reactions: Vec::new() };
    state.conversations.comments.push(comment);
    shared.changed.notify_waiters();
    let html_url = format!("https://github.com/{slug}/pull/{number}#issuecomment-{id}");
    (StatusCode::CREATED, axum::Json(json!({ "id": id, "body": text, "html_url": html_url, "user": { "login": APP_LOGIN } })))
        .into_response()
}
