//! The App's webhook delivery log (`GET /app/hook/deliveries`), read with
//! the App's JWT: every attempt GitHub made to deliver a webhook, with what
//! the receiver answered, and each attempt's payload on request.
//!
//! GitHub keeps the log for 3 days (7 on GitHub Enterprise Server) and never
//! redelivers by itself; reading it is how greenlight recovers deliveries
//! it never received.

use super::client::{Credential, GitHub, GitHubError};
use chrono::{DateTime, Utc};
use http::Method;
use serde::Deserialize;

/// GitHub's largest page of the delivery log (`per_page`, at most 100).
pub const DELIVERIES_PER_PAGE: usize = 100;

/// One attempt in the log.
#[derive(Debug, Clone, Deserialize)]
pub struct LoggedDelivery {
    /// The attempt's id (each redelivery has its own).
    pub id: u64,
    /// `X-GitHub-Delivery`: the same for a delivery and its redeliveries.
    pub guid: String,
    /// When GitHub made the attempt.
    pub delivered_at: DateTime<Utc>,
    /// What the receiver answered; 0 when GitHub got no answer.
    #[serde(default)]
    pub status_code: u16,
    /// The event.
    pub event: String,
    /// The payload's action, if any.
    #[serde(default)]
    pub action: Option<String>,
}

impl LoggedDelivery {
    /// Whether the receiver took it (GitHub counts 2xx and 3xx as success).
    pub fn succeeded(&self) -> bool {
        (200..400).contains(&self.status_code)
    }
}

/// A page of the log, newest first, and the cursor of the next one.
#[derive(Debug)]
pub struct DeliveryPage {
    /// The attempts on this page.
    pub deliveries: Vec<LoggedDelivery>,
    /// Where the next (older) page starts, if there is one.
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct Detail {
    request: DetailRequest,
}

#[derive(Deserialize)]
struct DetailRequest {
    payload: serde_json::Value,
}

/// The `cursor` of the `rel="next"` link of a `Link` header.
fn next_cursor(link: &str) -> Option<String> {
    let next = link.split(',').find(|part| part.contains("rel=\"next\""))?;
    let url = next.split(';').next()?.trim().trim_start_matches('<').trim_end_matches('>');
    let query = url.split_once('?')?.1;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).ok()?.into_iter().find(|(k, _)| k == "cursor").map(|(_, v)| v)
}

impl GitHub {
    /// A page of the App's delivery log, newest first, from `cursor`.
    pub async fn hook_deliveries(&self, cursor: Option<&str>) -> Result<DeliveryPage, GitHubError> {
        let mut path = format!("/app/hook/deliveries?per_page={DELIVERIES_PER_PAGE}");
        if let Some(cursor) = cursor {
            path.push_str(&format!("&cursor={}", crate::text::percent_encode(cursor, b"")));
        }
        let reply = self.request(Credential::App, Method::GET, &path, None, true).await?;
        let deliveries =
            serde_json::from_slice(&reply.body).map_err(|e| GitHubError::Decode { path: path.clone(), detail: e.to_string() })?;
        let next = reply.headers.get(http::header::LINK).and_then(|v| v.to_str().ok()).and_then(next_cursor);
        Ok(DeliveryPage { deliveries, next })
    }

    /// The payload of one attempt, as GitHub sent it.
    pub async fn hook_delivery_payload(&self, id: u64) -> Result<Vec<u8>, GitHubError> {
        let path = format!("/app/hook/deliveries/{id}");
        let detail: Detail = self.call(Credential::App, Method::GET, &path, None, true).await?;
        Ok(serde_json::to_vec(&detail.request.payload).expect("JSON serializes"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_next_cursor_is_read_from_the_link_header() {
        let link = "<https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_12077215967>; rel=\"next\"";
        assert_eq!(super::next_cursor(link).as_deref(), Some("v1_12077215967"));
        assert_eq!(super::next_cursor("<https://x/?cursor=a>; rel=\"prev\""), None);
    }
}
