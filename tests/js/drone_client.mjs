// Runs drone-node (the real Drone client) against a running greenlight.
// The Rust test prepares the builds and checks what this prints.
import drone from "drone-node";

const [owner, repo] = process.env.REPO.split("/");
const client = new drone.Client({ url: process.env.DRONE_SERVER, token: process.env.DRONE_TOKEN });

const USER = ["id", "login", "email", "machine", "admin", "active", "avatar", "syncing", "synced", "created", "updated", "last_login"];
const REPO = ["id", "uid", "user_id", "namespace", "name", "slug", "scm", "git_http_url", "git_ssh_url", "link", "default_branch", "private",
  "visibility", "active", "config_path", "trusted", "protected", "ignore_forks", "ignore_pull_requests", "auto_cancel_pull_requests",
  "auto_cancel_pushes", "timeout", "counter", "synced", "created", "updated", "version"];
const BUILD = ["id", "repo_id", "trigger", "number", "status", "event", "action", "link", "timestamp", "message", "before", "after", "ref",
  "source_repo", "source", "target", "author_login", "author_name", "author_email", "author_avatar", "sender", "started", "finished",
  "created", "updated", "version"];
const STAGE = ["id", "repo_id", "build_id", "number", "name", "status", "errignore", "exit_code", "os", "arch", "started", "stopped",
  "created", "updated", "version", "on_success", "on_failure", "steps"];
const STEP = ["id", "step_id", "number", "name", "status", "exit_code", "version"];
const LINE = ["pos", "out", "time"];

function keys(what, object, expected) {
  const missing = expected.filter((k) => !(k in object));
  if (missing.length) throw new Error(`${what} lacks ${missing.join(", ")}: ${JSON.stringify(object)}`);
}

const report = {};
const self = await client.getSelf();
keys("user", self, USER);
report.login = self.login;

const repository = await client.getRepo(owner, repo);
keys("repo", repository, REPO);
report.slug = repository.slug;

const builds = await client.getBuilds(owner, repo);
builds.forEach((b) => keys("build", b, BUILD));
report.builds = builds.map((b) => b.number);

const build = await client.getBuild(owner, repo, 1);
keys("build", build, BUILD);
build.stages.forEach((s) => { keys("stage", s, STAGE); s.steps.forEach((st) => keys("step", st, STEP)); });
report.build1 = { status: build.status, steps: build.stages[0].steps.map((s) => s.name) };

const latest = await client.latestBuild(owner, repo, { branch: "main" });
keys("latest build", latest, BUILD);
report.latest = latest.number;

const logs = await client.getLogs(owner, repo, 1, 1, 2);
logs.forEach((l) => keys("log line", l, LINE));
report.log = logs.map((l) => l.out).join("");

const retried = await client.retryBuild(owner, repo, 1, {});
keys("retried build", retried, BUILD);
report.retried = { number: retried.number, parent: retried.parent };

const cancelled = await client.cancelBuild(owner, repo, 2);
keys("cancelled build", cancelled, BUILD);
report.cancelled = cancelled.status;

try {
  await client.getBuild(owner, repo, 999);
  report.missing = "found";
} catch (error) {
  report.missing = error.status;
}

console.log(JSON.stringify(report));
