//! The Drone API as the guides written for Drone 0.8 use it: their routes
//! (`/api/user/feed`, activating a repository, a proc's log) and their
//! fields (`full_name`, `last_build`, a build's `procs`), beside Drone 2.x's.

mod support;

use support::CheckRunState::Success;
use support::{ONE_ECHO_STEP, Scenario};

/// A pipeline whose second step fails: the step after it is skipped.
const FAILS_AT_TEST: &str = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: build\n  commands: [echo built]\n- name: test\n  commands: [exit 3]\n- name: publish\n  commands: [echo published]\n";

#[tokio::test]
async fn the_seed_walkthrough_reads_a_failed_build_as_drone_08_shows_it() {
    let ctx = Scenario::new().with_workers().start().await;
    let (sha, _) = ctx.push_and_finish("main", FAILS_AT_TEST).await;
    // The App is installed on another repository; greenlight has had no delivery of it.
    let gadget = ctx.github.repo("acme/gadget");
    let api = ctx.api();

    let user = api.user08().await;
    assert_eq!((user.login.as_str(), user.admin, user.active, user.avatar_url.as_str()), ("admin", true, true, ""));

    let feed = api.feed(true).await;
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!(feed[0].full_name, "acme/widget");
    assert_eq!((feed[0].number, feed[0].status.as_deref()), (Some(1), Some("failure")));
    assert_eq!((feed[0].commit.as_deref(), feed[0].branch.as_deref()), (Some(sha.as_str()), Some("main")));

    let recent = api.feed(false).await;
    assert_eq!(recent.iter().map(|f| (f.full_name.as_str(), f.number)).collect::<Vec<_>>(), [("acme/widget", Some(1))]);

    let repos = api.user_repos08(true, true).await;
    let names: Vec<&str> = repos.iter().map(|r| r.full_name.as_str()).collect();
    assert_eq!(names, ["acme/gadget", "acme/widget"], "flush asked GitHub, so the new repository is there at once");
    assert!(repos.iter().all(|r| r.active && r.config_file == ".drone.yml" && r.builds_pushes_pull_requests_and_tags()), "{repos:?}");
    assert_eq!(repos[1].last_build, 1);
    assert_eq!(repos[0].clone_url, gadget.clone_url());

    let repo = api.repo08().await;
    assert_eq!((repo.owner.as_str(), repo.name.as_str(), repo.full_name.as_str()), ("acme", "widget", "acme/widget"));
    assert_eq!((repo.link_url.as_str(), repo.clone_url.as_str()), ("https://github.com/acme/widget", ctx.repo.clone_url().as_str()));
    assert_eq!((repo.default_branch.as_str(), repo.visibility.as_str(), repo.private, repo.gated), ("main", "public", false, false));
    assert_eq!((repo.timeout, repo.last_build), (60, 1));

    let activated = api.of_repo("acme/gadget").activate().await;
    assert_eq!((activated.status, activated.json::<support::drone08::Repo08>().active), (200, true));

    let build = api.build08(1).await;
    assert_eq!((build.status.as_str(), build.event.as_str(), build.commit.as_str()), ("failure", "push", sha.as_str()));
    assert_eq!(
        (build.branch.as_str(), build.git_ref.as_str(), build.remote.as_str()),
        ("main", "refs/heads/main", ctx.repo.clone_url().as_str())
    );
    assert!(build.enqueued_at > 0 && build.created_at > 0 && build.started_at >= build.created_at && build.finished_at >= build.started_at);
    assert_eq!(build.procs.len(), 1, "one root proc per stage");
    let root = &build.procs[0];
    assert_eq!((root.pid, root.ppid, root.pgid, root.name.as_str()), (1, 0, 1, "default"));
    assert_eq!((root.state.as_str(), root.exit_code), ("failure", 3));
    assert!(root.children.iter().all(|c| c.build_id == root.build_id));
    assert_eq!(root.step_names(), ["clone", "build", "test", "publish"]);
    let pids: Vec<(i64, i64, i64)> = root.children.iter().map(|c| (c.pid, c.ppid, c.pgid)).collect();
    assert_eq!(pids, [(2, 1, 2), (3, 1, 3), (4, 1, 4), (5, 1, 5)]);
    let states: Vec<(&str, i64)> = root.children.iter().map(|c| (c.state.as_str(), c.exit_code)).collect();
    assert_eq!(states, [("success", 0), ("success", 0), ("failure", 3), ("skipped", 0)]);
    let clone = root.step("clone");
    assert!(clone.started > 0 && clone.stopped >= clone.started, "{clone:?}");
    let mut ids: Vec<i64> = std::iter::once(root.id).chain(root.children.iter().map(|c| c.id)).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "every proc has its own id");

    let builds = api.builds08().await;
    assert_eq!(builds.iter().map(|b| (b.number, b.commit.as_str())).collect::<Vec<_>>(), [(1, sha.as_str())]);
    assert!(builds[0].procs.is_empty(), "lists carry no procs");
    assert_eq!(builds[0].author, build.author);

    let (status, clone_log) = api.proc_log(1, 2).await;
    assert_eq!(status, 200);
    assert!(!clone_log.is_empty() && clone_log.iter().all(|l| l.proc == "clone"), "{clone_log:?}");
    assert!(clone_log.iter().enumerate().all(|(i, l)| l.pos == i as i64));
    let (_, test_log) = api.proc_log(1, 4).await;
    assert!(test_log.iter().any(|l| l.out == "+ exit 3\n"), "{test_log:?}");
    let (_, stage_log) = api.proc_log(1, 1).await;
    let mut procs: Vec<&str> = stage_log.iter().map(|l| l.proc.as_str()).collect();
    procs.dedup();
    assert_eq!(procs, ["clone", "build", "test"], "a stage's log is its steps' lines in order (the skipped one printed nothing)");
    assert_eq!(api.proc_log(1, 6).await.0, 404);
    assert_eq!(api.proc_log(1, 0).await.0, 404);
}

#[tokio::test]
async fn a_deactivated_repository_starts_no_build_until_it_is_activated_again() {
    let ctx = Scenario::new().with_workers().start().await;
    ctx.push_and_finish("main", ONE_ECHO_STEP).await;
    let api = ctx.api();

    let deactivated = api.deactivate().await;
    assert_eq!((deactivated.status, deactivated.json::<support::drone08::Repo08>().active), (200, false));
    assert!(api.feed(true).await.is_empty(), "the feed lists active repositories");
    assert!(api.user_repos08(false, false).await.is_empty(), "without all, only active repositories");
    assert!(!api.user_repos08(true, false).await[0].active);

    let ignored = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP), ("n.txt", "2")]).await;
    ctx.settle().await;
    assert_eq!(ctx.builds().await.len(), 1, "no build for a deactivated repository");
    assert!(ctx.check_runs(&ignored).is_empty() && ctx.statuses(&ignored).is_empty(), "nothing is posted for it");

    assert_eq!(api.activate().await.status, 200);
    let built = ctx.push_and_deliver("main", &[(".drone.yml", ONE_ECHO_STEP), ("n.txt", "3")]).await;
    ctx.expect_check_run(&built, "default (push)", Success).await;
    assert_eq!(api.repo08().await.last_build, 2);
}

#[tokio::test]
async fn flush_follows_the_apps_installations_across_pages_and_activation_needs_one() {
    let ctx = Scenario::new().start().await;
    let org = ctx.github.many_repos("bulk", 101);
    let api = ctx.api();

    let repos = api.user_repos08(true, true).await;
    assert_eq!(repos.len(), 102, "acme/widget, and the 101 of one installation (two of GitHub's pages)");
    assert!(repos.iter().any(|r| r.full_name == org[100].slug));

    ctx.github.uninstall(&org[0]);
    let after = api.user_repos08(true, true).await;
    let removed = after.iter().find(|r| r.full_name == org[0].slug).expect("still listed");
    assert!(!removed.active, "a repository the App was removed from is inactive");
    assert_eq!(api.of_repo(&org[0].slug).activate().await.status, 404, "the App cannot reach it");
    assert_eq!(api.of_repo("acme/nowhere").activate().await.status, 404);
    assert_eq!(api.guest().activate().await.status, 401);
    let unclear = api.call("GET", "/api/user/repos?flush=yes", None).await;
    assert_eq!((unclear.status, unclear.message()), (400, Some("flush: expected true or false, got \"yes\"")));
}

#[tokio::test]
async fn a_two_stage_build_numbers_its_procs_as_drone_08_did() {
    let ctx = Scenario::new().with_workers().start().await;
    let two = "kind: pipeline\ntype: exec\nname: lint\nsteps:\n- name: vet\n  commands: [echo vetted]\n---\nkind: pipeline\ntype: exec\nname: test\nsteps:\n- name: unit\n  commands: [echo unit]\n- name: e2e\n  commands: [echo e2e]\n";
    ctx.push_and_finish("main", two).await;

    let build = ctx.api().build08(1).await;
    let outline: Vec<String> = build.procs.iter().map(|root| root.outline()).collect();
    assert_eq!(
        outline,
        ["1 lint: 3 clone, 4 vet", "2 test: 5 clone, 6 unit, 7 e2e"],
        "roots 1 and 2 in stage order, then the steps numbered on"
    );
    assert!(build.procs.iter().all(|root| root.children.iter().all(|c| c.ppid == root.pid && c.pgid == c.pid)));
    assert!(build.procs.iter().all(|p| p.state == "success" && p.ppid == 0 && p.pgid == p.pid));

    let (_, second_stage) = ctx.api().proc_log(1, 2).await;
    let mut procs: Vec<&str> = second_stage.iter().map(|l| l.proc.as_str()).collect();
    procs.dedup();
    assert_eq!(procs, ["clone", "unit", "e2e"]);
    assert!(second_stage.iter().any(|l| l.out == "e2e\n"), "{second_stage:?}");
}
