//! The build pages GitHub links to.

mod support;

use support::app::API_TOKEN;
use support::{ONE_ECHO_STEP, Scenario};

#[tokio::test]
async fn the_build_page_shows_the_commit_steps_and_escaped_logs() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: html\n  commands:\n  - echo '<b>not bold</b>'\n";
    let (sha, _) = ctx.push_and_finish("main", steps).await;
    let browser = ctx.browser();

    let page = browser.build_page(1).await;
    let list = browser.builds_page().await;

    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = page.text;
    assert!(page.contains("Build #1 <span class=\"status status-success\" id=\"build-status\""), "{page}");
    assert!(page.contains(sha.as_str()));
    assert!(page.contains("refs/heads/main"));
    assert!(page.contains("<h3>html <span class=\"status status-success\""));
    assert!(page.contains("&lt;b&gt;not bold&lt;/b&gt;\n"), "log text is escaped");
    assert!(!page.contains("<b>not bold</b>"));
    assert!(list.text.contains("<a href=\"/acme/widget/1\">#1</a>"), "{}", list.text);
}

#[tokio::test]
async fn a_long_log_shows_its_tail_and_links_the_rest() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: chatty\n  commands:\n  - seq 1 3000\n";
    ctx.push_and_finish("main", steps).await;

    let page = ctx.browser().build_page(1).await.text;

    assert!(page.contains("Showing the last 500 of 3001 lines."), "{}", &page[..page.len().min(3000)]);
    assert!(page.contains("<a href=\"/api/repos/acme/widget/builds/1/logs/1/2\">Full log</a>"));
    assert!(page.contains("\n3000\n") && !page.contains("\n2500\n"));
}

#[tokio::test]
async fn a_private_build_page_asks_for_the_token_and_keeps_it_in_a_cookie() {
    let ctx = Scenario::new().private_repo("acme/secret").with_workers().start().await;
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;
    let mut browser = ctx.browser();

    let guest = browser.build_page(1).await;
    let wrong = browser.log_in("nope", 1).await;
    let right = browser.log_in(API_TOKEN, 1).await;
    let with_cookie = browser.build_page(1).await;

    assert_eq!(guest.status, 303);
    assert_eq!(guest.location(), Some("/login?next=/acme/secret/1"));
    assert_eq!(wrong.status, 401);
    assert_eq!(right.status, 303);
    assert_eq!(right.location(), Some("/acme/secret/1"));
    let cookie = right.set_cookie().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert_eq!(with_cookie.status, 200);
    assert!(with_cookie.text.contains("Build #1"));
}
