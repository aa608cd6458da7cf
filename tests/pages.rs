//! The build pages GitHub links to.

mod support;

use support::app::API_TOKEN;
use support::{FakeGitHub, ONE_ECHO_STEP, TestApp};

#[tokio::test]
async fn the_build_page_shows_the_commit_steps_and_escaped_logs() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: html\n  commands:\n  - echo '<b>not bold</b>'\n";
    let app = TestApp::with_workers(&github).await;
    let (sha, _) = app.push_and_finish(&repo, "main", steps).await;

    let (status, headers, page) = app.get_text("/acme/widget/1").await;
    let (_, _, list) = app.get_text("/acme/widget").await;

    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.contains("Build #1 <span class=\"status status-success\" id=\"build-status\""), "{page}");
    assert!(page.contains(&sha));
    assert!(page.contains("refs/heads/main"));
    assert!(page.contains("<h3>html <span class=\"status status-success\""));
    assert!(page.contains("&lt;b&gt;not bold&lt;/b&gt;\n"), "log text is escaped");
    assert!(!page.contains("<b>not bold</b>"));
    assert!(list.contains("<a href=\"/acme/widget/1\">#1</a>"), "{list}");
}

#[tokio::test]
async fn a_long_log_shows_its_tail_and_links_the_rest() {
    let github = FakeGitHub::start().await;
    let repo = github.repo("acme/widget");
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: chatty\n  commands:\n  - seq 1 3000\n";
    let app = TestApp::with_workers(&github).await;
    app.push_and_finish(&repo, "main", steps).await;

    let (_, _, page) = app.get_text("/acme/widget/1").await;

    assert!(page.contains("Showing the last 500 of 3001 lines."), "{}", &page[..page.len().min(3000)]);
    assert!(page.contains("<a href=\"/api/repos/acme/widget/builds/1/logs/1/2\">Full log</a>"));
    assert!(page.contains("\n3000\n") && !page.contains("\n2500\n"));
}

#[tokio::test]
async fn a_private_build_page_asks_for_the_token_and_keeps_it_in_a_cookie() {
    let github = FakeGitHub::start().await;
    let repo = github.private_repo("acme/secret");
    let app = TestApp::with_workers(&github).await;
    app.push_and_finish(&repo, "main", ONE_ECHO_STEP).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let guest = http.get(format!("{}/acme/secret/1", app.url())).send().await.unwrap();
    let wrong = http.post(format!("{}/login", app.url())).form(&[("token", "nope"), ("next", "/acme/secret/1")]).send().await.unwrap();
    let right = http.post(format!("{}/login", app.url())).form(&[("token", API_TOKEN), ("next", "/acme/secret/1")]).send().await.unwrap();
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_string();
    let with_cookie =
        http.get(format!("{}/acme/secret/1", app.url())).header("cookie", cookie.split(';').next().unwrap()).send().await.unwrap();

    assert_eq!(guest.status().as_u16(), 303);
    assert_eq!(guest.headers()["location"], "/login?next=/acme/secret/1");
    assert_eq!(wrong.status().as_u16(), 401);
    assert_eq!(right.status().as_u16(), 303);
    assert_eq!(right.headers()["location"], "/acme/secret/1");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert_eq!(with_cookie.status().as_u16(), 200);
    assert!(with_cookie.text().await.unwrap().contains("Build #1"));
}
