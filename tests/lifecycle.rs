//! The build lifecycle, one transition at a time: nothing runs on its own,
//! each test plans and runs stage jobs by hand and drives the races the
//! lifecycle's docs name in a fixed order, against a real redis-server,
//! real git and real bwrap.

mod support;

use greenlight::lifecycle::Ended;
use greenlight::model::{Stage, StageState, Status};
use greenlight::publish::StageReport;
use support::Webhook;
use support::fake_github::{CheckRunState, StatusState};
use support::stepper::Stepper;

const PASSING: &str = "kind: pipeline\ntype: exec\nname: default\nsteps:\n- name: greet\n  commands:\n  - echo ok\n";

/// Two pipelines: `test` (which runs `test_command`) and `deploy`, which depends on it.
fn two_pipelines(test_command: &str) -> String {
    format!(
        "kind: pipeline\ntype: exec\nname: test\nsteps:\n- name: t\n  commands: [\"{test_command}\"]\n---\nkind: pipeline\ntype: exec\nname: deploy\ndepends_on: [test]\nsteps:\n- name: d\n  commands: [echo deployed]\n"
    )
}

fn states(stages: &[Stage]) -> Vec<StageState> {
    stages.iter().map(|s| s.state).collect()
}

const DONE_PUBLISHED: fn(Status) -> StageState = |status| StageState::Done { status, published: true };

#[tokio::test]
async fn a_build_goes_from_queued_to_running_to_done_one_step_at_a_time() {
    let mut gl = Stepper::new().await;
    let mut worker = gl.worker("worker-a").await;
    let sha = gl.push("main", PASSING).await;

    assert_eq!(gl.plan().await, 1);
    assert_eq!(states(&gl.stages(1).await), vec![StageState::Pending { approved: false, queued: true }]);
    assert_eq!(gl.build(1).await.status, Status::Pending);
    assert_eq!(gl.github.check_runs(&gl.repo, &sha)[0].state, CheckRunState::Queued);

    assert!(worker.run_next().await);
    assert_eq!(states(&gl.stages(1).await), vec![DONE_PUBLISHED(Status::Success)]);
    let build = gl.build(1).await;
    assert_eq!((build.status, build.started > 0, build.finished > 0), (Status::Success, true, true));
    let run = gl.github.check_runs(&gl.repo, &sha).pop().unwrap();
    assert_eq!(run.history, vec![CheckRunState::Queued, CheckRunState::InProgress, CheckRunState::Success]);
    assert_eq!((gl.stages(1).await[0].machine.clone(), gl.stages(1).await[0].attempt), (worker.name.clone(), 1));
    assert!(!worker.run_next().await, "no job is left behind");
}

#[tokio::test]
async fn copies_of_a_delivery_start_one_build_and_are_all_acknowledged() {
    let mut gl = Stepper::new().await;
    let sha = gl.repo.push("main", &[(".drone.yml", PASSING)]);
    let hook = Webhook::push(&gl.repo, "main", &sha);
    for _ in 0..3 {
        gl.queue(&hook.redelivery()).await;
    }

    assert_eq!(gl.plan().await, 3, "the three copies are read in one batch");
    assert_eq!(gl.builds().await.len(), 1);
    assert_eq!(gl.github.check_runs(&gl.repo, &sha).len(), 1);
    assert_eq!(gl.stream_lengths().await, (0, 1), "every copy is acknowledged; one stage job is queued");

    // Another copy while the build is queued: read, acknowledged, nothing started.
    gl.queue(&hook.redelivery()).await;
    assert_eq!(gl.plan().await, 1);
    assert_eq!(gl.builds().await.len(), 1);
    assert_eq!(gl.stream_lengths().await, (0, 1));
}

#[tokio::test]
async fn a_dependent_pipeline_waits_then_runs_after_its_dependency_passes() {
    let mut gl = Stepper::new().await;
    let mut worker = gl.worker("worker-a").await;
    gl.push("main", &two_pipelines("true")).await;
    gl.plan().await;
    assert_eq!(
        states(&gl.stages(1).await),
        vec![StageState::Pending { approved: false, queued: true }, StageState::Waiting { approved: false }]
    );

    assert!(worker.run_next().await);
    assert_eq!(
        states(&gl.stages(1).await),
        vec![DONE_PUBLISHED(Status::Success), StageState::Pending { approved: false, queued: true }],
        "the dependency passed: deploy is queued"
    );
    assert_eq!(gl.build(1).await.status, Status::Running);
    assert!(worker.run_next().await);
    assert_eq!(states(&gl.stages(1).await), vec![DONE_PUBLISHED(Status::Success), DONE_PUBLISHED(Status::Success)]);
    assert_eq!(gl.build(1).await.status, Status::Success);
}

#[tokio::test]
async fn a_dependent_pipeline_is_skipped_when_its_dependency_fails() {
    let mut gl = Stepper::new().await;
    let mut worker = gl.worker("worker-a").await;
    let sha = gl.push("main", &two_pipelines("exit 1")).await;
    gl.plan().await;

    assert!(worker.run_next().await);
    assert_eq!(states(&gl.stages(1).await), vec![DONE_PUBLISHED(Status::Failure), DONE_PUBLISHED(Status::Skipped)]);
    assert_eq!(gl.build(1).await.status, Status::Failure);
    let deploy = gl.github.check_runs(&gl.repo, &sha).into_iter().find(|r| r.name == "deploy (push)").unwrap();
    assert_eq!(deploy.state, CheckRunState::Skipped);
    assert!(deploy.summary.unwrap().contains("a pipeline it depends on (test) did not pass"));
    assert!(!worker.run_next().await, "the skipped stage's job was never queued");
}

/// A build of [`PASSING`] planned, its stage begun by `worker-a` (which
/// then stalls or stops), and `worker-b` ready to claim jobs.
async fn begun_by_worker_a() -> (Stepper, support::stepper::SteppedWorker, String, greenlight::lifecycle::Begun) {
    let mut gl = Stepper::new().await;
    let worker_b = gl.worker("worker-b").await;
    let sha = gl.push("main", PASSING).await;
    gl.plan().await;
    let job = gl.job(1, 0).await;
    let begun = gl.lifecycle.begin(&job, "worker-a").await.unwrap().expect("not cancelled");
    (gl, worker_b, sha, begun)
}

#[tokio::test]
async fn a_cancel_after_a_hand_back_skips_the_stage_before_any_worker_runs_it() {
    // worker-a begins the stage, then runs out of grace and hands it back…
    let (gl, mut worker, sha, begun) = begun_by_worker_a().await;
    assert_eq!(gl.lifecycle.hand_back(&begun.build, &begun.stage).await.unwrap(), Ended::Done);
    assert_eq!(gl.stages(1).await[0].state, StageState::Pending { approved: false, queued: true });
    assert_eq!(gl.github.check_runs(&gl.repo, &sha)[0].state, CheckRunState::Queued, "handed back: queued again");
    // …and the build is cancelled before another worker claims it.
    gl.lifecycle.cancel(&gl.build(1).await, "stop").await.unwrap();

    assert_eq!(states(&gl.stages(1).await), vec![DONE_PUBLISHED(Status::Skipped)]);
    while worker.run_next().await {}
    assert_eq!(states(&gl.stages(1).await), vec![DONE_PUBLISHED(Status::Skipped)], "no worker ran it");
    assert_eq!(gl.build(1).await.status, Status::Killed);
    let run = gl.github.check_runs(&gl.repo, &sha).pop().unwrap();
    assert_eq!(run.state, CheckRunState::Cancelled);
    assert!(run.summary.unwrap().contains("Cancelled before this stage started: stop."));
}

#[tokio::test]
async fn a_cancel_while_a_stage_is_being_handed_back_is_honoured_by_the_next_worker() {
    // The cancel lands while worker-a still runs the stage (it leaves
    // running stages to their workers); worker-a's hand back lands after it.
    let (gl, mut worker, sha, begun) = begun_by_worker_a().await;
    gl.lifecycle.cancel(&begun.build, "").await.unwrap();
    gl.lifecycle.hand_back(&begun.build, &begun.stage).await.unwrap();
    assert_eq!(gl.stages(1).await[0].state, StageState::Pending { approved: false, queued: true });

    while worker.run_next().await {}
    assert_eq!(states(&gl.stages(1).await), vec![DONE_PUBLISHED(Status::Skipped)], "skipped on the next claim, not run");
    assert_eq!(gl.build(1).await.status, Status::Killed);
    assert_eq!(gl.github.check_runs(&gl.repo, &sha).pop().unwrap().state, CheckRunState::Cancelled);
}

#[tokio::test]
async fn a_stage_taken_over_ends_once_and_the_stalled_workers_late_result_is_dropped() {
    // worker-a begins and stalls past its lease; worker-b takes the stage over and ends it.
    let (gl, mut worker_b, sha, stalled) = begun_by_worker_a().await;
    assert!(worker_b.run_next().await);
    let run = gl.github.check_runs(&gl.repo, &sha).pop().unwrap();
    assert!(run.summary.unwrap().contains("The worker `worker-a` stopped while running this stage; `worker-b` ran it again"));
    // worker-a wakes up and ends the stage too, with another result.
    let mut late = stalled.stage;
    late.steps[0].status = Status::Failure;
    assert!(!gl.lifecycle.record_step(&late, 0).await.unwrap(), "its step record is not written over the new run's");
    let report = StageReport::not_run("late".to_string(), None, chrono::Utc::now());
    let ended = gl.lifecycle.end(&stalled.build, &late, Status::Failure, &report).await.unwrap();
    assert_eq!(ended, Ended::TakenOver, "so its worker leaves the job to the worker that has it");
    assert_eq!(gl.lifecycle.hand_back(&stalled.build, &late).await.unwrap(), Ended::TakenOver);

    assert_eq!(states(&gl.stages(1).await), vec![DONE_PUBLISHED(Status::Success)]);
    assert_eq!(gl.build(1).await.status, Status::Success);
    let run = gl.github.check_runs(&gl.repo, &sha).pop().unwrap();
    assert_eq!(
        run.history,
        vec![CheckRunState::Queued, CheckRunState::InProgress, CheckRunState::InProgress, CheckRunState::Success],
        "GitHub saw one end"
    );
    assert_eq!(gl.github.statuses(&gl.repo, &sha).last().unwrap().state, StatusState::Success);
}

#[tokio::test]
async fn approving_a_blocked_stage_whose_dependency_already_ended_runs_it() {
    let mut gl = Stepper::new().await;
    let mut worker = gl.worker("worker-a").await;
    gl.push("main", PASSING).await;
    gl.plan().await;
    let mut repo = gl.store().repo(greenlight::ids::RepoId(gl.repo.id)).await.unwrap().unwrap();
    repo.protected = true;
    gl.store().save_repo(&repo).await.unwrap();
    while worker.run_next().await {}

    let sha = gl.repo.push("feature", &[(".drone.yml", &two_pipelines("true"))]);
    gl.queue(&Webhook::pull_request_from(&gl.repo, "opened", 7, "feature", &sha, Some("stranger/widget"))).await;
    gl.plan().await;
    assert_eq!(states(&gl.stages(2).await), vec![StageState::Blocked, StageState::Blocked]);
    assert_eq!(gl.build(2).await.status, Status::Blocked);

    assert!(gl.lifecycle.approve(&gl.build(2).await, 1).await.unwrap());
    assert_eq!(gl.stages(2).await[0].state, StageState::Pending { approved: true, queued: true }, "approved before its job exists");
    assert!(worker.run_next().await);
    assert_eq!(states(&gl.stages(2).await), vec![DONE_PUBLISHED(Status::Success), StageState::Blocked], "deploy still waits for a person");
    assert!(gl.lifecycle.approve(&gl.build(2).await, 2).await.unwrap());
    assert_eq!(gl.stages(2).await[1].state, StageState::Pending { approved: true, queued: true }, "its dependency had passed already");
    assert!(worker.run_next().await);
    assert_eq!(states(&gl.stages(2).await), vec![DONE_PUBLISHED(Status::Success), DONE_PUBLISHED(Status::Success)]);
    assert_eq!(gl.build(2).await.status, Status::Success);
    assert!(!gl.lifecycle.approve(&gl.build(2).await, 2).await.unwrap(), "a stage that is not blocked is not approved again");
}

#[tokio::test]
async fn a_cancel_interrupted_before_it_reached_a_waiting_stage_still_ends_the_build() {
    let mut gl = Stepper::new().await;
    let mut worker = gl.worker("worker-b").await;
    let sha = gl.push("main", &two_pipelines("true")).await;
    gl.plan().await;
    let begun = gl.lifecycle.begin(&gl.job(1, 0).await, "worker-a").await.unwrap().expect("not cancelled");

    // The cancel is recorded, then its process dies before it skips `deploy`
    // (which waits on the running `test`): only the request is left.
    gl.store().request_cancel(begun.build.id, "stop").await.unwrap();
    let report = StageReport::not_run("killed".to_string(), Some("stop".to_string()), chrono::Utc::now());
    assert_eq!(gl.lifecycle.end(&begun.build, &begun.stage, Status::Killed, &report).await.unwrap(), Ended::Done);

    assert_eq!(states(&gl.stages(1).await), vec![DONE_PUBLISHED(Status::Killed), DONE_PUBLISHED(Status::Skipped)]);
    assert_eq!(gl.build(1).await.status, Status::Killed, "the build is complete");
    let deploy = gl.github.check_runs(&gl.repo, &sha).into_iter().find(|r| r.name == "deploy (push)").unwrap();
    assert_eq!(deploy.state, CheckRunState::Cancelled);
    while worker.run_next().await {}
    assert_eq!(states(&gl.stages(1).await), vec![DONE_PUBLISHED(Status::Killed), DONE_PUBLISHED(Status::Skipped)], "no job ran deploy");
}
