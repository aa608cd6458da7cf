//! After a stage: start the stages that waited for it, and finish the build
//! after its last stage (then a redelivery of its webhook starts a new build).

use super::stage::StageRunner;
use crate::publish::StageReport;
use crate::store::{Build, Stage, StageJob, Status};

/// Counts `stage` done, releases or skips the stages waiting on it, and
/// finishes the build when every stage is done.
pub(super) async fn finish(runner: &StageRunner, build: &Build, stage: &Stage) -> anyhow::Result<()> {
    let mut done = vec![stage.clone()];
    while let Some(finished) = done.pop() {
        let stages = runner.store.stages(build).await?;
        for mut waiting in stages.iter().filter(|s| s.status == Status::WaitingOnDependencies).cloned() {
            let deps: Vec<Status> =
                waiting.depends_on.iter().filter_map(|d| stages.iter().find(|s| &s.name == d).map(|s| s.status)).collect();
            if !deps.iter().all(|s| s.is_done()) {
                continue;
            }
            let passing = deps.iter().all(|s| !s.is_failed());
            if waiting.pipeline.trigger.admits_status(!passing) {
                waiting.status = Status::Pending;
                waiting.enqueued = true;
                runner.store.save_stage(&mut waiting).await?;
                runner.jobs.push(&StageJob { build: build.id, stage: waiting.id }).await?;
                continue;
            }
            waiting.status = Status::Skipped;
            for step in &mut waiting.steps {
                step.status = Status::Skipped;
            }
            waiting.stopped = runner.clock.now().timestamp();
            runner.store.save_stage(&mut waiting).await?;
            let note = format!("Skipped: a pipeline it depends on ({}) did not pass.", waiting.depends_on.join(", "));
            let report = StageReport::not_run(note, None, runner.sandbox.is_sandboxed(), runner.clock.now());
            if let Err(e) = runner.publisher.stage_finished(build, &waiting, &report).await {
                tracing::warn!(error = %e, "could not publish a skipped stage");
            }
            done.push(waiting);
        }
        if runner.store.stage_done(build, finished.id).await? {
            crate::control::complete_build(&runner.store, &runner.clock, build).await?;
        }
    }
    Ok(())
}
