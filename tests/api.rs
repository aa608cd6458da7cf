//! The Drone-compatible API: shapes, access, pagination, actions, streams, badges.

mod support;

use serde_json::Value;
use support::CheckRunState::Success;
use support::app::API_TOKEN;
use support::{Ctx, ONE_ECHO_STEP, Scenario, Webhook};

const REPO_KEYS: &[&str] = &[
    "id",
    "uid",
    "user_id",
    "namespace",
    "name",
    "slug",
    "scm",
    "git_http_url",
    "git_ssh_url",
    "link",
    "default_branch",
    "private",
    "visibility",
    "active",
    "config_path",
    "trusted",
    "protected",
    "ignore_forks",
    "ignore_pull_requests",
    "auto_cancel_pull_requests",
    "auto_cancel_pushes",
    "auto_cancel_running",
    "timeout",
    "counter",
    "synced",
    "created",
    "updated",
    "version",
    "archived",
];
const BUILD_KEYS: &[&str] = &[
    "id",
    "repo_id",
    "trigger",
    "number",
    "status",
    "event",
    "action",
    "link",
    "timestamp",
    "message",
    "before",
    "after",
    "ref",
    "source_repo",
    "source",
    "target",
    "author_login",
    "author_name",
    "author_email",
    "author_avatar",
    "sender",
    "started",
    "finished",
    "created",
    "updated",
    "version",
];
const STAGE_KEYS: &[&str] = &[
    "id",
    "repo_id",
    "build_id",
    "number",
    "name",
    "kind",
    "type",
    "status",
    "errignore",
    "exit_code",
    "os",
    "arch",
    "started",
    "stopped",
    "created",
    "updated",
    "version",
    "on_success",
    "on_failure",
];
const STEP_KEYS: &[&str] = &["id", "step_id", "number", "name", "status", "exit_code", "version"];

fn assert_keys(value: &Value, keys: &[&str]) {
    let object = value.as_object().unwrap_or_else(|| panic!("not an object: {value}"));
    for key in keys {
        assert!(object.contains_key(*key), "missing {key} in {value}");
    }
}

/// A repository with two finished builds on main and one on a branch.
async fn three_builds(ctx: &Ctx) -> Vec<support::Sha> {
    let mut shas = Vec::new();
    for (i, branch) in ["main", "main", "feature"].iter().enumerate() {
        let sha = ctx.push_and_deliver(branch, &[(".drone.yml", ONE_ECHO_STEP), ("n.txt", &i.to_string())]).await;
        ctx.expect_check_run(&sha, "default (push)", Success).await;
        ctx.expect_build_done(i as i64 + 1).await;
        shas.push(sha);
    }
    shas
}

#[tokio::test]
async fn the_admin_token_is_accepted_as_drone_accepts_it_and_nothing_else_is() {
    let ctx = Scenario::new().start().await;
    let app = &ctx.app;
    let http = reqwest::Client::new();
    let user = format!("{}/api/user", app.url());
    let status = |r: reqwest::Response| r.status().as_u16();

    let guest = app.api("GET", "/api/user", false).await;
    let bearer = app.api("GET", "/api/user", true).await;
    let raw = status(http.get(&user).header("authorization", API_TOKEN).send().await.unwrap());
    let query = status(http.get(format!("{user}?access_token={API_TOKEN}")).send().await.unwrap());
    let wrong = status(http.get(&user).bearer_auth("test-admin-token-0123456789abcdeX").send().await.unwrap());

    assert_eq!((guest.status, guest.body["message"].as_str()), (401, Some("Unauthorized")));
    assert_eq!(bearer.status, 200);
    assert_keys(
        &bearer.body,
        &["id", "login", "email", "machine", "admin", "active", "avatar", "syncing", "synced", "created", "updated", "last_login"],
    );
    assert_eq!(bearer.body["admin"], true);
    assert_eq!((raw, query, wrong), (200, 200, 401));
}

#[tokio::test]
async fn public_repositories_are_readable_by_anyone_private_ones_only_with_the_token() {
    let ctx = Scenario::new().with_workers().start().await;
    let public = ctx.github.repo("acme/open");
    let private = ctx.github.private_repo("acme/closed");
    let app = &ctx.app;
    for repo in [&public, &private] {
        app.push_and_finish(repo, "main", ONE_ECHO_STEP).await;
    }

    let open = app.api("GET", "/api/repos/acme/open", false).await;
    let closed_guest = app.api("GET", "/api/repos/acme/closed/builds/1", false).await;
    let closed_admin = app.api("GET", "/api/repos/acme/closed", true).await;
    let missing_guest = app.api("GET", "/api/repos/acme/nothing", false).await;
    let missing_admin = app.api("GET", "/api/repos/acme/nothing", true).await;

    assert_eq!(open.status, 200);
    assert_keys(&open.body, REPO_KEYS);
    assert_eq!(
        (open.body["slug"].as_str(), open.body["visibility"].as_str(), open.body["counter"].as_i64()),
        (Some("acme/open"), Some("public"), Some(1))
    );
    assert_eq!(closed_guest.status, 401);
    assert_eq!((closed_admin.status, closed_admin.body["private"].as_bool()), (200, Some(true)));
    assert_eq!((missing_guest.status, missing_admin.status), (401, 404));
}

#[tokio::test]
async fn builds_are_listed_newest_first_paginated_and_filtered_by_branch() {
    let ctx = Scenario::new().with_workers().start().await;
    let app = &ctx.app;
    three_builds(&ctx).await;

    let all = app.api("GET", "/api/repos/acme/widget/builds", false).await;
    let page2 = app.api("GET", "/api/repos/acme/widget/builds?page=2&per_page=2", false).await;
    let main = app.api("GET", "/api/repos/acme/widget/builds?branch=main", false).await;
    let numbers = |v: &Value| v.as_array().unwrap().iter().map(|b| b["number"].as_i64().unwrap()).collect::<Vec<_>>();

    assert_eq!(numbers(&all.body), vec![3, 2, 1]);
    for build in all.body.as_array().unwrap() {
        assert_keys(build, BUILD_KEYS);
        assert!(build.get("stages").is_none(), "lists carry no stages");
    }
    assert_eq!(numbers(&page2.body), vec![1]);
    assert_eq!(numbers(&main.body), vec![2, 1]);
    assert_eq!(all.body[0]["ref"], "refs/heads/feature");
}

#[tokio::test]
async fn a_build_comes_with_its_stages_steps_and_logs() {
    let ctx = Scenario::new().with_workers().start().await;
    let app = &ctx.app;
    let shas = three_builds(&ctx).await;

    let build = app.api("GET", "/api/repos/acme/widget/builds/1", false).await;
    let latest = app.api("GET", "/api/repos/acme/widget/builds/latest", false).await;
    let latest_feature = app.api("GET", "/api/repos/acme/widget/builds/latest?branch=feature", false).await;
    let latest_ref = app.api("GET", "/api/repos/acme/widget/builds/latest?ref=refs/heads/feature", false).await;
    let none = app.api("GET", "/api/repos/acme/widget/builds/latest?branch=nope", false).await;
    let log = app.api("GET", "/api/repos/acme/widget/builds/1/logs/1/2", false).await;
    let bad = app.api("GET", "/api/repos/acme/widget/builds/one", false).await;
    let missing = app.api("GET", "/api/repos/acme/widget/builds/9", false).await;
    let no_step = app.api("GET", "/api/repos/acme/widget/builds/1/logs/1/9", false).await;

    assert_eq!(build.status, 200);
    assert_keys(&build.body, BUILD_KEYS);
    assert_eq!(
        (build.body["status"].as_str(), build.body["after"].as_str(), build.body["trigger"].as_str()),
        (Some("success"), Some(shas[0].as_str()), Some("@hook"))
    );
    let stage = &build.body["stages"][0];
    assert_keys(stage, STAGE_KEYS);
    assert_eq!((stage["name"].as_str(), stage["type"].as_str()), (Some("default"), Some("exec")));
    let steps = stage["steps"].as_array().unwrap();
    assert_eq!(steps.iter().map(|s| s["name"].as_str().unwrap()).collect::<Vec<_>>(), vec!["clone", "greet"]);
    for step in steps {
        assert_keys(step, STEP_KEYS);
        assert_eq!(step["step_id"], stage["id"], "Drone's step_id holds the stage id");
    }
    assert_eq!(latest.body["number"], 2);
    assert_eq!((latest_feature.body["number"].as_i64(), latest_ref.body["number"].as_i64()), (Some(3), Some(3)));
    assert_eq!(none.status, 404);
    assert_eq!(log.body, serde_json::json!([{"pos": 0, "out": "+ echo ok\n", "time": 0}, {"pos": 1, "out": "ok\n", "time": 0}]));
    assert_eq!((bad.status, missing.status, no_step.status), (400, 404, 404));
    assert!(bad.body["message"].is_string());
}

#[tokio::test]
async fn the_user_endpoints_list_repositories_and_recent_builds() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.github.repo("acme/another");
    let app = &ctx.app;
    three_builds(&ctx).await;

    let repos = app.api("GET", "/api/user/repos?latest=true", true).await;
    let builds = app.api("GET", "/api/user/builds", true).await;
    let incomplete = app.api("GET", "/api/builds/incomplete", true).await;
    let guest = app.api("GET", "/api/user/repos", false).await;

    let list = repos.body.as_array().unwrap();
    assert_eq!(list.len(), 1, "only repositories greenlight has seen");
    assert_keys(&list[0], REPO_KEYS);
    assert_eq!(list[0]["build"]["number"], 3);
    let recent = builds.body.as_array().unwrap();
    assert_eq!(recent.iter().map(|r| r["build"]["number"].as_i64().unwrap()).collect::<Vec<_>>(), vec![3, 2, 1]);
    assert_keys(&recent[0]["build"], BUILD_KEYS);
    assert_eq!(incomplete.body, serde_json::json!([]));
    assert_eq!(guest.status, 401);
}

#[tokio::test]
async fn unsupported_routes_answer_501_and_every_answer_allows_any_origin() {
    let ctx = Scenario::new().start().await;
    let app = &ctx.app;

    let queue = app.api("GET", "/api/queue", true).await;
    let collaborators = app.api("GET", "/api/repos/acme/widget/collaborators", true).await;
    // (DELETE /api/repos/{o}/{n} is served now: it deactivates, tests/api_drone08.rs.)
    let patch = app.api("POST", "/api/repos/acme/widget/repair", true).await;
    let all = app.api("GET", "/api/repos", true).await;
    let (_, headers, _) = app.get_text("/api/user").await;
    let version = app.api("GET", "/version", false).await;

    assert_eq!((queue.status, queue.body["message"].as_str()), (501, Some("Not Implemented")));
    assert_eq!((collaborators.status, patch.status), (501, 501));
    assert_eq!((all.status, all.body.clone()), (200, serde_json::json!([])));
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["cache-control"].to_str().unwrap().contains("no-cache"));
    assert_eq!(version.body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn badges_show_the_latest_build_of_a_branch() {
    let ctx = Scenario::new().with_workers().start().await;
    let app = &ctx.app;
    let failing = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: t\n  commands: [exit 1]\n";
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;
    ctx.push_and_finish("broken", failing).await;

    let (status, headers, main) = app.get_text("/api/badges/acme/widget/status.svg").await;
    let (_, _, broken) = app.get_text("/api/badges/acme/widget/status.svg?branch=broken").await;
    let (_, _, none) = app.get_text("/api/badges/acme/nothing/status.svg").await;
    let (_, _, cc) = app.get_text("/api/badges/acme/widget/cc.xml").await;

    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert!(headers["cache-control"].to_str().unwrap().contains("no-cache"));
    assert!(main.contains(">success</text>"), "{main}");
    assert!(broken.contains(">failure</text>"));
    assert!(none.contains(">none</text>"));
    assert!(cc.contains(r#"<Project name="acme/widget" activity="Sleeping" lastBuildStatus="Failure" lastBuildLabel="2""#), "{cc}");
}

#[tokio::test]
async fn repositories_appear_when_the_app_is_installed_and_turn_inactive_when_removed() {
    let ctx = Scenario::new().start().await;
    let app = &ctx.app;

    let installed = ctx.install().await;
    let listed = app.api("GET", "/api/user/repos", true).await;
    let removed = ctx.deliver(&Webhook::installation_repositories(false, &[&ctx.repo])).await;
    let after = app.api("GET", "/api/repos/acme/widget", true).await;

    assert_eq!((installed.status, installed.body["message"].as_str()), (200, Some("1 repositories added, 0 removed")));
    let list = listed.body.as_array().unwrap();
    assert_eq!((list.len(), list[0]["slug"].as_str(), list[0]["active"].as_bool()), (1, Some("acme/widget"), Some(true)));
    assert_eq!(removed.status, 200);
    assert_eq!(after.body["active"], false);
}

#[tokio::test]
async fn a_listing_or_badge_for_a_branch_with_no_builds_costs_a_few_redis_calls_whatever_the_history() {
    let ctx = Scenario::new().start().await;
    // Forty builds on other branches (planned only: no worker needed).
    for i in 0..40 {
        ctx.push_and_deliver(&format!("b{i}"), &[(".drone.yml", ONE_ECHO_STEP)]).await;
    }
    ctx.settle().await;
    let app = &ctx.app;
    assert_eq!(app.api("GET", "/api/repos/acme/widget/builds?per_page=100", false).await.body.as_array().unwrap().len(), 40);

    let commands = || app.redis.info("total_commands_processed");
    // What asking costs by itself (a connection's handshake and INFO).
    let asking = {
        let first = commands().await;
        commands().await - first
    };
    let before = commands().await;
    let listed = app.api("GET", "/api/repos/acme/widget/builds?branch=nonexistent", false).await;
    let listing = commands().await - before - asking;
    let before = commands().await;
    let (_, _, badge) = app.get_text("/api/badges/acme/widget/status.svg?branch=nonexistent").await;
    let badging = commands().await - before - asking;

    assert_eq!(listed.body, serde_json::json!([]));
    assert!(badge.contains("unknown") || badge.contains("none"), "{badge}");
    // A handful (the repository, the index, and the pool's PING per checkout), not one per build.
    assert!(listing <= 12, "{listing} Redis commands to list an empty branch among 40 builds");
    assert!(badging <= 12, "{badging} Redis commands for a badge of an empty branch among 40 builds");
}

#[tokio::test]
async fn a_guests_badge_for_a_private_repository_says_nothing_about_its_builds() {
    let ctx = Scenario::new().private_repo("acme/secret").with_workers().start().await;
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;
    let (guest, admin, unknown) = (ctx.guest(), ctx.api(), ctx.guest().of_repo("acme/nothing"));

    let (status, badge) = guest.badge(None).await;
    let (_, on_ref) = guest.badge(Some("refs/heads/main")).await;
    let (_, unknown_badge) = unknown.badge(None).await;
    let (_, admin_badge) = admin.badge(None).await;
    let cc = guest.cc_xml().await;
    let unknown_cc = unknown.cc_xml().await;
    let admin_cc = admin.cc_xml().await;

    assert_eq!(status, 200);
    assert_eq!(badge, unknown_badge, "a private repository's badge is an unknown one's");
    assert_eq!(on_ref, unknown_badge, "and says nothing of its refs");
    assert!(badge.contains(">none</text>"), "{badge}");
    assert!(admin_badge.contains(">success</text>"), "the token sees it: {admin_badge}");
    assert_eq!(cc, unknown_cc, "cc.xml answers a guest as for an unknown repository");
    assert_eq!(cc.0, 401);
    assert!(admin_cc.1.contains(r#"lastBuildStatus="Success""#), "{}", admin_cc.1);
}

#[tokio::test]
async fn a_private_repositorys_badge_key_shows_its_badge_to_anyone_holding_it() {
    let ctx = Scenario::new().private_repo("acme/secret").with_workers().start().await;
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;
    let mut browser = ctx.browser();
    let guest = ctx.guest();

    let guest_sees_none = browser.badge_path().await;
    browser.log_in(API_TOKEN, 1).await;
    let path = browser.badge_path().await.expect("the admin's build list shows the badge URL");
    let (status, keyed) = guest.get_text(&path).await;
    let (_, wrong) = guest.get_text("/api/badges/acme/secret/status.svg?key=00000000000000000000000000000000").await;
    let (cc_status, _) = guest.get_text(&path.replace("status.svg", "cc.xml")).await;

    assert_eq!(guest_sees_none, None);
    assert!(path.starts_with("/api/badges/acme/secret/status.svg?key="), "{path}");
    assert_eq!(status, 200);
    assert!(keyed.contains(">success</text>"), "{keyed}");
    assert!(wrong.contains(">none</text>"), "{wrong}");
    assert_eq!(cc_status, 200);
}

#[tokio::test]
async fn repository_events_change_who_may_read_it_at_once() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;
    let guest = ctx.guest();
    let public_before = guest.build(1).await.status;

    let privatized = ctx.deliver_repository_event("privatized", true).await;
    let private_build = guest.build(1).await.status;
    let private_repo = ctx.app.api("GET", "/api/repos/acme/widget", false).await.status;
    let (_, private_badge) = guest.badge(None).await;
    let publicized = ctx.deliver_repository_event("publicized", false).await;
    let public_again = guest.build(1).await.status;

    assert_eq!(public_before, 200);
    assert_eq!(privatized.status, 200, "{:?}", privatized.body);
    assert_eq!((private_build, private_repo), (401, 401), "private at once, before any other delivery");
    assert!(private_badge.contains(">none</text>"));
    assert_eq!(publicized.status, 200);
    assert_eq!(public_again, 200);
}

#[tokio::test]
async fn a_renamed_repository_is_found_by_its_new_name_only_and_a_deleted_one_turns_inactive() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;

    let renamed = ctx.deliver(&Webhook::repository_renamed(&ctx.repo, "gadget")).await;
    let old = ctx.app.api("GET", "/api/repos/acme/widget", true).await;
    let new = ctx.app.api("GET", "/api/repos/acme/gadget/builds/1", true).await;
    let deleted = ctx.deliver(&Webhook::repository(&ctx.repo, "deleted", false)).await;
    let after = ctx.app.api("GET", "/api/repos/acme/widget", true).await;

    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(old.status, 404);
    assert_eq!((new.status, new.body["number"].as_i64()), (200, Some(1)), "{:?}", new.body);
    assert_eq!(deleted.status, 200);
    assert_eq!((after.status, after.body["active"].as_bool()), (200, Some(false)), "{:?}", after.body);
}
