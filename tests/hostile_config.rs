//! A hostile `.drone.yml` (an alias bomb, thousands of documents, a huge
//! file) is refused with an error status and a failed check run naming the
//! cap it broke, and another repository's push planned meanwhile still gets
//! its pending status.

mod support;

use greenlight::store::Status;
use std::time::Instant;
use support::CheckRunState::{Failure, Queued};
use support::fake_github::Endpoint;
use support::{ONE_ECHO_STEP, Scenario, StatusState, Webhook};

/// Pushes `config` to `acme/widget` and a good pipeline to `acme/gadget`,
/// delivers both pushes one right after the other; expects the widget's push to end in an error whose status
/// and check run contain `expected`, and the gadget's to be planned as usual.
async fn refused_while_another_repository_is_planned(case: &str, config: &str, expected: &str) {
    let ctx = Scenario::new().start().await;
    let other = ctx.github.repo("acme/gadget");
    let other_sha = other.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    let sha = ctx.push_pipeline("main", config);
    let started = Instant::now();

    for answer in [ctx.deliver_push("main", &sha).await, ctx.deliver(&Webhook::push(&other, "main", &other_sha)).await] {
        assert_eq!(answer.status, 202, "{:?}", answer.body);
    }

    ctx.github.expect_status(&other, &other_sha, "greenlight/default/push", StatusState::Pending).await;
    ctx.github.expect_check_run(&other, &other_sha, "default (push)", Queued).await;
    let other_planned = started.elapsed();
    let status = ctx.expect_status(&sha, "greenlight/.drone.yml/push", StatusState::Error).await;
    let refused = started.elapsed();
    assert!(status.description.starts_with(".drone.yml: "), "{}", status.description);
    assert!(status.description.contains(expected), "{}", status.description);
    let run = ctx.expect_check_run(&sha, ".drone.yml (push)", Failure).await;
    assert!(run.summary.as_deref().unwrap_or_default().contains(expected), "{run:?}");
    assert_eq!(ctx.expect_builds(1).await[0].status, Status::Error);
    // The delivery was acknowledged, not left to be reclaimed.
    ctx.settle().await;
    assert_eq!(ctx.builds().await.len(), 1);
    eprintln!("{case}: from the deliveries, refused after {refused:?}; the other repository's pending status after {other_planned:?}");
}

#[tokio::test]
async fn a_wide_alias_bomb_is_an_error_naming_the_expansion_cap() {
    let items = vec!["x"; 10_000].join(",");
    let uses = vec!["*a"; 10_000].join(",");
    let bomb = format!("a: &a [{items}]\nb: [{uses}]\n");
    assert!(bomb.len() < 64 * 1024, "a small file: {} bytes", bomb.len());

    refused_while_another_repository_is_planned("alias bomb", &bomb, "expands to more than 250000 YAML values").await;
}

#[tokio::test]
async fn twelve_thousand_signature_documents_are_an_error_naming_the_document_cap() {
    let signatures = vec!["kind: signature\nhmac: 0123456789abcdef\n"; 12_000].join("---\n");
    let config = format!("{ONE_ECHO_STEP}---\n{signatures}");

    refused_while_another_repository_is_planned("12,000 documents", &config, "more than 100 YAML documents; greenlight reads at most 100")
        .await;
}

#[tokio::test]
async fn a_ten_megabyte_file_is_an_error_naming_the_size_cap() {
    let padding = "# padding\n".repeat(1024 * 1024);
    let config = format!("{ONE_ECHO_STEP}{padding}");
    assert_eq!(config.len() / (1024 * 1024), 10);

    refused_while_another_repository_is_planned("10 MB", &config, "the file is 10.0 MB; greenlight reads at most 512 KB").await;
}

/// Under GitHub's 1 MB, the file comes with its content, and is refused by
/// its size all the same.
#[tokio::test]
async fn a_file_over_the_cap_that_github_serves_whole_is_an_error_naming_the_size_cap() {
    let config = format!("{ONE_ECHO_STEP}{}", "# padding\n".repeat(60 * 1024));
    assert_eq!(config.len().div_ceil(1024), 601);

    refused_while_another_repository_is_planned("601 KB", &config, "the file is 601 KB; greenlight reads at most 512 KB").await;
}

#[tokio::test]
async fn deeply_nested_flow_collections_are_an_error_naming_the_bracket_cap() {
    let nested = format!("{ONE_ECHO_STEP}---\nkind: signature\nhmac: {}{}\n", "{a: ".repeat(100_000), "}".repeat(100_000));

    refused_while_another_repository_is_planned(
        "100,000 nested {a: ",
        &nested,
        "more than 10000 `[` and `{`; greenlight reads at most 10000",
    )
    .await;
}

#[tokio::test]
async fn a_repository_whose_pipeline_github_is_slow_to_serve_delays_no_other() {
    let ctx = Scenario::new().start().await;
    let other = ctx.github.repo("acme/gadget");
    let slow = ctx.github.hold(Endpoint::Contents, "acme/widget");
    let sha = ctx.push_pipeline("main", ONE_ECHO_STEP);
    assert_eq!(ctx.deliver_push("main", &sha).await.status, 202);
    let asked = || async { ctx.github.requests().iter().any(|r| r.path.contains("/repos/acme/widget/contents/")).then_some(()) };
    support::wait::until("greenlight to ask for the widget's .drone.yml", asked).await;

    // The widget's planning hangs on GitHub; the gadget's push comes after it.
    let other_sha = other.push("main", &[(".drone.yml", ONE_ECHO_STEP)]);
    assert_eq!(ctx.deliver(&Webhook::push(&other, "main", &other_sha)).await.status, 202);
    ctx.github.expect_status(&other, &other_sha, "greenlight/default/push", StatusState::Pending).await;
    assert!(ctx.statuses(&sha).is_empty(), "the widget is still waiting for GitHub");

    drop(slow);
    ctx.expect_status(&sha, "greenlight/default/push", StatusState::Pending).await;
}
