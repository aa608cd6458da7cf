//! The build pages GitHub links to.

mod support;

use support::app::API_TOKEN;
use support::drone::Origin;
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
    assert_eq!(guest.headers["x-frame-options"], "DENY");
    assert_eq!(guest.headers["cache-control"], "private, no-store");
    assert_eq!(wrong.status, 401);
    assert_eq!(right.status, 303);
    assert_eq!(right.location(), Some("/acme/secret/1"));
    let cookie = right.set_cookie().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Max-Age=43200"), "{cookie}");
    assert!(!cookie.contains(API_TOKEN), "the cookie holds a session id, never the token: {cookie}");
    assert!(!cookie.contains("Secure"), "the public URL is http: {cookie}");
    assert_eq!(with_cookie.status, 200);
    assert!(with_cookie.text.contains("Build #1"));
    let unknown_guest = ctx.browser().open("/acme/nothing/1").await;
    let unknown_admin = browser.open("/acme/nothing/1").await;
    assert_eq!(unknown_guest.location(), Some("/login?next=/acme/nothing/1"), "an unknown repository looks private to a guest");
    assert_eq!(unknown_admin.status, 404);
}

#[tokio::test]
async fn logging_out_ends_the_session() {
    let ctx = Scenario::new().private_repo("acme/secret").with_workers().start().await;
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;
    let mut browser = ctx.browser();
    browser.log_in(API_TOKEN, 1).await;
    let csrf = browser.csrf_token(1).await.expect("a logged-in page carries a CSRF token");

    let out = browser.log_out(&csrf).await;
    let after = browser.build_page(1).await;

    assert_eq!(out.status, 303);
    assert!(out.set_cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(after.status, 303, "the old cookie names no session");
    assert_eq!(after.location(), Some("/login?next=/acme/secret/1"));
}

#[tokio::test]
async fn login_follows_only_a_path_of_this_site() {
    let ctx = Scenario::new().private_repo("acme/secret").start().await;
    let mut browser = ctx.browser();

    for next in ["/\\evil.example/x", "https://evil.example", "//evil.example", "/\t/evil.example", "evil.example"] {
        let page = browser.log_in_to(API_TOKEN, next).await;
        assert_eq!((page.status, page.location()), (303, Some("/")), "next={next:?}");
    }
    let page = browser.log_in_to(API_TOKEN, "/acme/secret/1?x=1").await;
    assert_eq!(page.location(), Some("/acme/secret/1?x=1"));
}

#[tokio::test]
async fn a_cookie_restart_must_come_from_the_page_with_its_csrf_token() {
    let ctx = Scenario::new().private_repo("acme/secret").with_workers().start().await;
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;
    let mut browser = ctx.browser();
    browser.log_in(API_TOKEN, 1).await;
    let csrf = browser.csrf_token(1).await.expect("a logged-in page carries a CSRF token");

    let foreign = browser.restart(1, Origin::Site("https://evil.example"), Some(&csrf)).await;
    let tokenless = browser.restart(1, Origin::OwnPage, None).await;
    let wrong_token = browser.restart(1, Origin::OwnPage, Some("0123")).await;
    let builds_meanwhile = ctx.builds().await.len();
    let from_page = browser.restart(1, Origin::OwnPage, Some(&csrf)).await;
    let bearer = ctx.restart(1).await;

    assert_eq!(foreign.status, 403, "{}", foreign.text);
    assert_eq!(tokenless.status, 403, "{}", tokenless.text);
    assert_eq!(wrong_token.status, 403, "{}", wrong_token.text);
    assert_eq!(builds_meanwhile, 1, "no refused request started a build");
    assert_eq!(from_page.status, 200, "{}", from_page.text);
    assert!(from_page.text.contains("\"number\":2"), "{}", from_page.text);
    assert_eq!(bearer.status, 200, "a bearer-token call needs neither Origin nor CSRF token: {:?}", bearer.body);
}

/// 500 lines of 16 KiB of `<` (each escaped fourfold on a page).
const HUGE_STEP: &str =
    "  commands:\n  - l=$(head -c 16383 /dev/zero | tr '\\0' '<'); i=0; while [ $i -lt 500 ]; do echo \"$l\"; i=$((i+1)); done\n";

/// This process's resident memory: now, and its peak since the last reset.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
async fn four_views_of_a_page_with_huge_logs_stay_small() {
    let ctx = Scenario::new().with_workers().start().await;
    let steps: String = (1..=4).map(|i| format!("- name: huge{i}\n{HUGE_STEP}")).collect();
    let pipeline = format!("kind: pipeline\ntype: exec\nname: default\nsteps:\n{steps}");
    let (_, build) = ctx.push_and_finish("main", &pipeline).await;
    assert!(ctx.log(&build, "huge4").await.len() > 8_000_000, "each step printed 8 MB");
    let browser = ctx.browser();

    // Linux resets the peak (VmHWM) to the current RSS on `5` (proc(5), clear_refs).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let (before, _) = rss_kib();
    let pages = futures::future::join_all((0..4).map(|_| browser.build_page(1))).await;
    let (_, peak) = rss_kib();

    let grew_mb = (peak.saturating_sub(before)) / 1024;
    assert!(grew_mb < 200, "4 views grew greenlight by {grew_mb} MB");
    for page in &pages {
        assert_eq!(page.status, 200);
        assert!(page.text.len() < 2_000_000, "a page of {} bytes", page.text.len());
        assert!(page.text.contains("&lt;&lt;&lt;&lt;"), "the logs' tails are on the page");
        assert!(page.text.contains("<a href=\"/api/repos/acme/widget/builds/1/logs/1/5\">Full log</a>"));
    }
}
