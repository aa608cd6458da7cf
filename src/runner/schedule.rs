//! The order steps run in, as Drone's runner decides it: file order, or a
//! DAG when any step declares `depends_on`; `when` conditions (status
//! included); `failure: ignore`; exit code 78 ends the stage early as a
//! success; cancellation skips what has not started. A detached step (a
//! service) counts as done once it has started, as in Drone, and is told
//! to stop once every other step is done.

use crate::pipeline::{Facts, Step};
use crate::store::Status;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// Drone's exit code for "stop the pipeline here, successfully".
pub const EXIT_STOP: i64 = 78;

/// How one step ended: what its record stores and what decides the
/// steps after it and the stage's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// success, failure, error, killed or skipped.
    pub status: Status,
    /// The exit code (137 when killed).
    pub exit_code: i64,
    /// What went wrong outside the step's own commands.
    pub error: String,
    /// Whether it was killed for running past its timeout.
    pub timed_out: bool,
    /// How many times it ran (`retry:` runs a failed step again); 0 when it did not run.
    pub attempts: u32,
}

impl Outcome {
    /// A step that did not run (its `when` did not match, a step before it
    /// failed, or the stage was cancelled first).
    pub fn skipped() -> Self {
        Self { status: Status::Skipped, exit_code: 0, error: String::new(), timed_out: false, attempts: 0 }
    }

    /// What a service's outcome is while it runs: done, for the steps after it.
    fn started() -> Self {
        Self { status: Status::Running, ..Self::skipped() }
    }
}

/// Runs the steps through `launch` (which runs step `i` and reports how it
/// ended); returns every step's outcome, in step order. `others_done` is
/// cancelled once only detached steps are still running (a service stops
/// when it sees it).
pub async fn execute<F, Fut>(
    steps: &[Step],
    facts: &Facts<'_>,
    cancel: &CancellationToken,
    others_done: &CancellationToken,
    launch: F,
) -> Vec<Outcome>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let n = steps.len();
    let serial = steps.iter().all(|s| s.depends_on.is_empty());
    let deps: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            if serial {
                if i == 0 { vec![] } else { vec![i - 1] }
            } else {
                steps[i].depends_on.iter().filter_map(|d| steps.iter().position(|s| &s.name == d)).collect()
            }
        })
        .collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut started = vec![false; n];
    let mut live = vec![false; n];
    let mut failing = false;
    let mut stopped = false;
    let mut running = FuturesUnordered::new();
    loop {
        // Start (or skip) everything whose dependencies are done; skipping
        // can free further steps, so repeat until nothing changes.
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..n {
                if started[i] || !deps[i].iter().all(|d| outcomes[*d].is_some()) {
                    continue;
                }
                started[i] = true;
                changed = true;
                let when = &steps[i].when;
                let ruled_out = steps[i].paths_ruled_out || !when.matches(facts);
                if cancel.is_cancelled() || stopped || ruled_out || !when.admits_status(failing) {
                    outcomes[i] = Some(Outcome::skipped());
                    continue;
                }
                let run = launch(i);
                live[i] = true;
                if steps[i].detach {
                    outcomes[i] = Some(Outcome::started());
                }
                running.push(async move { (i, run.await) });
            }
        }
        if (0..n).all(|i| !live[i] || steps[i].detach) {
            others_done.cancel();
        }
        let Some((i, outcome)) = running.next().await else {
            break;
        };
        if outcome.status.is_failed() && !steps[i].ignore_failure {
            failing = true;
        }
        if outcome.exit_code == EXIT_STOP && outcome.status == Status::Success {
            stopped = true;
        }
        live[i] = false;
        outcomes[i] = Some(outcome);
    }
    outcomes.into_iter().map(|o| o.unwrap_or_else(Outcome::skipped)).collect()
}

/// A stage's status from its steps' outcomes.
pub fn stage_status(steps: &[Step], outcomes: &[Outcome], cancelled: bool) -> Status {
    if cancelled {
        return Status::Killed;
    }
    let failed = steps.iter().zip(outcomes).any(|(s, o)| o.status.is_failed() && !s.ignore_failure);
    if failed { Status::Failure } else { Status::Success }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse;
    use std::sync::Mutex;

    fn facts() -> Facts<'static> {
        Facts { event: "push", branch: "main", git_ref: "refs/heads/main", action: "", repo: "acme/widget", changed: None }
    }

    fn outcome(status: Status, exit_code: i64) -> Outcome {
        Outcome { status, exit_code, error: String::new(), timed_out: false, attempts: 1 }
    }

    /// Runs a pipeline whose steps "exit" with the code in their first command.
    async fn run(yaml: &str) -> (Vec<String>, Vec<Status>) {
        run_selected(yaml, None).await
    }

    /// Runs the pipeline as planned for a change of `changed` files.
    async fn run_selected(yaml: &str, changed: Option<&[String]>) -> (Vec<String>, Vec<Status>) {
        let config = parse(yaml).unwrap();
        let steps = config.select(&Facts { changed, ..facts() }).run[0].steps.clone();
        let order = Mutex::new(Vec::new());
        let outcomes = execute(&steps, &facts(), &CancellationToken::new(), &CancellationToken::new(), |i| {
            order.lock().unwrap().push(steps[i].name.clone());
            let code: i64 = steps[i].commands[0].parse().unwrap();
            async move { outcome(if code == 0 || code == EXIT_STOP { Status::Success } else { Status::Failure }, code) }
        })
        .await;
        (order.into_inner().unwrap(), outcomes.into_iter().map(|o| o.status).collect())
    }

    #[tokio::test]
    async fn a_failure_skips_the_rest_unless_they_ask_for_failure() {
        let (order, statuses) = run("kind: pipeline\ntype: exec\nsteps:\n- {name: a, commands: ['1']}\n- {name: b, commands: ['0']}\n- {name: notify, commands: ['0'], when: {status: [failure]}}\n").await;
        assert_eq!(order, vec!["a", "notify"]);
        assert_eq!(statuses, vec![Status::Failure, Status::Skipped, Status::Success]);
    }

    #[tokio::test]
    async fn ignored_failures_do_not_fail_the_stage() {
        let (order, statuses) =
            run("kind: pipeline\ntype: exec\nsteps:\n- {name: a, commands: ['1'], failure: ignore}\n- {name: b, commands: ['0']}\n").await;
        assert_eq!(order, vec!["a", "b"]);
        assert_eq!(statuses, vec![Status::Failure, Status::Success]);
    }

    #[tokio::test]
    async fn exit_78_stops_the_stage_successfully() {
        let (order, statuses) =
            run("kind: pipeline\ntype: exec\nsteps:\n- {name: a, commands: ['78']}\n- {name: b, commands: ['0']}\n").await;
        assert_eq!(order, vec!["a"]);
        assert_eq!(statuses, vec![Status::Success, Status::Skipped]);
    }

    #[tokio::test]
    async fn depends_on_orders_a_dag() {
        let (order, _) = run("kind: pipeline\ntype: exec\nsteps:\n- {name: last, commands: ['0'], depends_on: [mid]}\n- {name: mid, commands: ['0'], depends_on: [first]}\n- {name: first, commands: ['0']}\n").await;
        assert_eq!(order, vec!["first", "mid", "last"]);
    }

    #[tokio::test]
    async fn when_conditions_skip_steps() {
        let (order, statuses) =
            run("kind: pipeline\ntype: exec\nsteps:\n- {name: a, commands: ['0'], when: {event: [tag]}}\n- {name: b, commands: ['0']}\n")
                .await;
        assert_eq!(order, vec!["b"]);
        assert_eq!(statuses, vec![Status::Skipped, Status::Success]);
    }

    #[tokio::test]
    async fn a_step_whose_paths_match_no_changed_file_is_skipped() {
        let yaml =
            "kind: pipeline\ntype: exec\nsteps:\n- {name: docs, commands: ['0'], when: {paths: [docs/**]}}\n- {name: b, commands: ['0']}\n";
        let code_only = vec!["src/lib.rs".to_string()];
        assert_eq!(run_selected(yaml, Some(&code_only)).await.1, vec![Status::Skipped, Status::Success]);
        let with_docs = vec!["src/lib.rs".to_string(), "docs/a.md".to_string()];
        assert_eq!(run_selected(yaml, Some(&with_docs)).await.0, vec!["docs", "b"]);
        assert_eq!(run_selected(yaml, None).await.0, vec!["docs", "b"], "unknown changes run it");
    }

    #[tokio::test]
    async fn a_service_counts_as_done_once_started_and_is_told_to_stop_when_only_it_is_left() {
        let yaml = "kind: pipeline\ntype: exec\nsteps:\n- {name: db, commands: ['0'], detach: true}\n- {name: test, commands: ['0']}\n";
        let steps = parse(yaml).unwrap().select(&facts()).run[0].steps.clone();
        let (cancel, others_done) = (CancellationToken::new(), CancellationToken::new());
        let order = Mutex::new(Vec::new());
        let outcomes = execute(&steps, &facts(), &cancel, &others_done, |i| {
            let (order, others_done, step) = (&order, &others_done, &steps[i]);
            async move {
                order.lock().unwrap().push(format!("{} started", step.name));
                if step.detach {
                    others_done.cancelled().await;
                }
                order.lock().unwrap().push(format!("{} ended", step.name));
                outcome(Status::Success, 0)
            }
        })
        .await;
        let order = order.into_inner().unwrap();
        assert_eq!(order.len(), 4);
        assert_eq!(order[2..], ["test ended", "db ended"], "test ran while db was running: {order:?}");
        assert_eq!(outcomes.iter().map(|o| o.status).collect::<Vec<_>>(), vec![Status::Success, Status::Success]);
    }
}
