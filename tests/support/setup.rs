//! A person setting greenlight up from its setup page, and GitHub's side of
//! deliveries (its delivery log), as scenario steps.

use super::fake_github::RegisteredApp;
use super::scenario::Ctx;
use super::webhook::Webhook;

/// The setup page's registration form, as a browser would submit it.
#[derive(Debug, Clone)]
pub struct SetupForm {
    /// Where the form posts (GitHub's "new App" page, with the state).
    pub action: String,
    /// The manifest it posts.
    pub manifest: serde_json::Value,
}

/// A page greenlight answered.
#[derive(Debug, Clone)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// The HTML.
    pub html: String,
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// The value of `attribute` in the first tag of `html` that contains `marker`.
fn attribute(html: &str, marker: &str, attribute: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let key = format!("{attribute}=\"");
    let value_start = tag.find(&key)? + key.len();
    Some(unescape(&tag[value_start..value_start + tag[value_start..].find('"')?]))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

impl Ctx {
    /// Opens greenlight's `/` (with `?organization=` when given).
    pub async fn open(&self, path: &str) -> Page {
        let response = client().get(format!("{}{path}", self.app.url())).send().await.expect("greenlight answers");
        Page { status: response.status().as_u16(), html: response.text().await.unwrap() }
    }

    /// The registration form of the setup page at `/`.
    pub async fn setup_form(&self, path: &str) -> SetupForm {
        let page = self.open(path).await;
        assert_eq!(page.status, 200, "the setup page: {}", page.html);
        let action = attribute(&page.html, "id=\"register\"", "action").expect("the page has the registration form");
        let manifest = attribute(&page.html, "name=\"manifest\"", "value").expect("the form carries a manifest");
        SetupForm { action, manifest: serde_json::from_str(&manifest).expect("the manifest is JSON") }
    }

    /// Submits the form to GitHub, which registers the App and redirects
    /// back; returns where it redirects to.
    pub async fn submit_to_github(&self, form: &SetupForm) -> String {
        let body = [("manifest", form.manifest.to_string())];
        let response = client().post(&form.action).form(&body).send().await.expect("GitHub answers");
        assert_eq!(response.status().as_u16(), 302, "GitHub redirects back: {:?}", response.text().await);
        response.headers()["location"].to_str().unwrap().to_string()
    }

    /// Follows a redirect GitHub sent back to greenlight.
    pub async fn follow(&self, url: &str) -> Page {
        let response = client().get(url).send().await.expect("greenlight answers");
        Page { status: response.status().as_u16(), html: response.text().await.unwrap() }
    }

    /// The App GitHub registered from greenlight's manifest.
    pub fn registered_app(&self) -> RegisteredApp {
        self.registered_app_if_any().expect("an App was registered")
    }

    /// The App GitHub registered, if greenlight exchanged a code for one.
    pub fn registered_app_if_any(&self) -> Option<RegisteredApp> {
        self.github.registered_app()
    }

    /// Delivers `hook` signed with the registered App's secret, as GitHub
    /// would once the App exists.
    pub async fn deliver_as_registered(&self, hook: &Webhook) -> u16 {
        self.app.deliver_signed_with(hook, &self.registered_app().webhook_secret).await.status
    }

    /// GitHub delivers `hook` and logs the attempt with greenlight's answer.
    pub async fn deliver_logged(&self, hook: &Webhook) -> u16 {
        let status = self.app.deliver(hook).await.status;
        self.github.log_delivery(hook, status);
        status
    }

    /// GitHub could not reach greenlight with `hook`: only its log has it.
    pub fn lose_delivery(&self, hook: &Webhook) {
        self.github.log_delivery(hook, 0);
    }

    /// greenlight received `hook`, but GitHub gave up waiting for the answer
    /// and logged a failure (10 seconds on, when greenlight had planned it).
    pub async fn deliver_timed_out(&self, hook: &Webhook) {
        let status = self.app.deliver(hook).await.status;
        assert_eq!(status, 202, "greenlight took the delivery");
        self.app.expect_deliveries_handled().await;
        self.github.log_delivery(hook, 0);
    }

    /// Waits until greenlight has read the delivery log `times` more times than `before`.
    pub async fn expect_log_reads(&self, before: usize, times: usize) {
        let endpoint = super::fake_github::Endpoint::HookDeliveries;
        let read = self.github.wait_for(|| (self.github.requests_to(endpoint) >= before + times).then_some(())).await;
        assert!(
            read.is_some(),
            "greenlight read the delivery log {} times, expected {}",
            self.github.requests_to(endpoint) - before,
            times
        );
    }
}
