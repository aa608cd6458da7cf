//! Webhook deliveries shaped like GitHub's: octokit's published examples
//! (fixtures/webhooks) with the repository, commit and installation swapped in.

use super::fake_github::RepoHandle;
use serde_json::{Value, json};

/// How many commits a truncated push payload lists.
pub const PAYLOAD_COMMITS: usize = 20;

/// The branch GitHub's merge queue makes for a group of pull request `pr`
/// on main (GitHub appends the base sha: `gh-readonly-queue/main/pr-{n}-{sha}`).
pub fn merge_queue_branch(pr: u64) -> String {
    format!("gh-readonly-queue/main/pr-{pr}")
}

/// The secret test deliveries are signed with.
pub const SECRET: &str = "test-webhook-secret";

/// One delivery.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `X-GitHub-Event`.
    pub event: &'static str,
    /// `X-GitHub-Delivery`.
    pub guid: String,
    /// The JSON body.
    pub body: Vec<u8>,
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/webhooks/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn new_guid() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        rand::random::<u32>(),
        rand::random::<u16>(),
        rand::random::<u16>() & 0xfff,
        rand::random::<u16>() & 0xfff,
        rand::random::<u64>() & 0xffff_ffff_ffff
    )
}

fn patch_repository(payload: &mut Value, repo: &RepoHandle) {
    let (owner, name) = repo.slug.split_once('/').unwrap();
    let r = &mut payload["repository"];
    r["id"] = json!(repo.id);
    r["name"] = json!(name);
    r["full_name"] = json!(repo.slug);
    r["owner"]["login"] = json!(owner);
    r["private"] = json!(repo.private);
    r["clone_url"] = json!(repo.clone_url());
    r["html_url"] = json!(format!("https://github.com/{}", repo.slug));
    r["default_branch"] = json!("main");
    payload["installation"] = json!({ "id": repo.installation, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ==" });
}

impl Webhook {
    fn new(event: &'static str, payload: &Value) -> Self {
        Self { event, guid: new_guid(), body: serde_json::to_vec(payload).unwrap() }
    }

    /// `pull_request` with `action` for PR `number` from `head_branch` at `sha` into main.
    pub fn pull_request(repo: &RepoHandle, action: &str, number: u64, head_branch: &str, sha: &str) -> Self {
        Self::pull_request_from(repo, action, number, head_branch, sha, Some(&repo.slug))
    }

    /// A pull request whose head lives in `head_repo` (a fork), or in a deleted fork (`None`).
    pub fn pull_request_from(repo: &RepoHandle, action: &str, number: u64, head_branch: &str, sha: &str, head_repo: Option<&str>) -> Self {
        let mut payload = fixture("pull_request.opened.json");
        patch_repository(&mut payload, repo);
        payload["action"] = json!(action);
        payload["number"] = json!(number);
        let pr = &mut payload["pull_request"];
        pr["number"] = json!(number);
        pr["html_url"] = json!(format!("https://github.com/{}/pull/{number}", repo.slug));
        pr["head"]["sha"] = json!(sha);
        pr["head"]["ref"] = json!(head_branch);
        pr["base"]["ref"] = json!("main");
        if let Some(base) = repo.branch_head("main") {
            pr["base"]["sha"] = json!(base);
        }
        pr["base"]["repo"]["full_name"] = json!(repo.slug);
        match head_repo {
            Some(slug) => pr["head"]["repo"]["full_name"] = json!(slug),
            None => pr["head"]["repo"] = Value::Null,
        }
        Self::new("pull_request", &payload)
    }

    /// `issue_comment` `created`: `author` wrote `body` (comment `id`) on
    /// pull request `number`, opened by `pr_author`.
    pub fn pr_comment(repo: &RepoHandle, number: u64, pr_author: &str, id: u64, author: &str, body: &str) -> Self {
        let mut payload = fixture("issue_comment.created.json");
        patch_repository(&mut payload, repo);
        let issue = &mut payload["issue"];
        issue["number"] = json!(number);
        issue["user"]["login"] = json!(pr_author);
        issue["html_url"] = json!(format!("https://github.com/{}/pull/{number}", repo.slug));
        // What makes the issue a pull request.
        issue["pull_request"] = json!({ "url": format!("https://api.github.com/repos/{}/pulls/{number}", repo.slug) });
        let comment = &mut payload["comment"];
        comment["id"] = json!(id);
        comment["body"] = json!(body);
        comment["user"]["login"] = json!(author);
        payload["sender"]["login"] = json!(author);
        Self::new("issue_comment", &payload)
    }

    /// `push` of `sha` to `refs/heads/<branch>` (or a `refs/tags/...` ref given in full).
    pub fn push(repo: &RepoHandle, git_ref: &str, sha: &str) -> Self {
        let mut payload = fixture("push.json");
        patch_repository(&mut payload, repo);
        let full_ref = if git_ref.starts_with("refs/") { git_ref.to_string() } else { format!("refs/heads/{git_ref}") };
        payload["ref"] = json!(full_ref);
        payload["after"] = json!(sha);
        payload["deleted"] = json!(false);
        payload["head_commit"]["id"] = json!(sha);
        Self::new("push", &payload)
    }

    /// `push` of `commits` (oldest first) to `branch`, from `before`: the
    /// payload lists only the newest 20 of them, as the events GitHub
    /// truncates do, so only a compare can tell every changed file.
    pub fn push_range(repo: &RepoHandle, branch: &str, before: &str, commits: &[String]) -> Self {
        let after = commits.last().expect("at least one commit");
        let mut hook = Self::push(repo, branch, after);
        let mut payload: Value = serde_json::from_slice(&hook.body).unwrap();
        payload["before"] = json!(before);
        let template = payload["commits"][0].clone();
        let listed = commits.iter().skip(commits.len().saturating_sub(PAYLOAD_COMMITS)).map(|sha| {
            let mut commit = template.clone();
            commit["id"] = json!(sha);
            commit
        });
        payload["commits"] = json!(listed.collect::<Vec<_>>());
        hook.body = serde_json::to_vec(&payload).unwrap();
        hook
    }

    /// `merge_group` `checks_requested`: the merge queue asks for checks on
    /// `head_sha`, its group of pull request `pr` on top of `base_sha` of main.
    pub fn merge_group_checks_requested(repo: &RepoHandle, pr: u64, head_sha: &str, base_sha: &str) -> Self {
        Self::merge_group(repo, "merge_group.checks_requested.json", pr, head_sha, base_sha)
    }

    /// `merge_group` `destroyed` (dequeued) for the group `merge_group_checks_requested` described.
    pub fn merge_group_destroyed(repo: &RepoHandle, pr: u64, head_sha: &str, base_sha: &str) -> Self {
        Self::merge_group(repo, "merge_group.destroyed.json", pr, head_sha, base_sha)
    }

    fn merge_group(repo: &RepoHandle, fixture_name: &str, pr: u64, head_sha: &str, base_sha: &str) -> Self {
        let mut payload = fixture(fixture_name);
        patch_repository(&mut payload, repo);
        let group = &mut payload["merge_group"];
        group["head_sha"] = json!(head_sha);
        group["head_ref"] = json!(format!("refs/heads/{}", merge_queue_branch(pr)));
        group["base_sha"] = json!(base_sha);
        group["base_ref"] = json!("refs/heads/main");
        group["head_commit"]["id"] = json!(head_sha);
        Self::new("merge_group", &payload)
    }

    /// A `push` that deletes a branch.
    pub fn branch_deleted(repo: &RepoHandle, branch: &str) -> Self {
        let mut payload = fixture("push.json");
        patch_repository(&mut payload, repo);
        payload["ref"] = json!(format!("refs/heads/{branch}"));
        payload["after"] = json!("0000000000000000000000000000000000000000");
        payload["deleted"] = json!(true);
        Self::new("push", &payload)
    }

    /// `installation` with `action` (created, deleted, suspend, …) covering `repos`.
    pub fn installation(action: &str, repos: &[&RepoHandle]) -> Self {
        let mut payload = fixture("installation.created.json");
        payload["action"] = json!(action);
        payload["installation"]["id"] = json!(repos[0].installation);
        payload["repositories"] = json!(
            repos
                .iter()
                .map(|r| json!({ "id": r.id, "name": r.slug.split('/').nth(1), "full_name": r.slug, "private": r.private }))
                .collect::<Vec<_>>()
        );
        Self::new("installation", &payload)
    }

    /// `installation_repositories` with `repos` added or removed.
    pub fn installation_repositories(added: bool, repos: &[&RepoHandle]) -> Self {
        let mut payload = fixture("installation_repositories.added.json");
        let list = json!(
            repos
                .iter()
                .map(|r| json!({ "id": r.id, "name": r.slug.split('/').nth(1), "full_name": r.slug, "private": r.private }))
                .collect::<Vec<_>>()
        );
        payload["action"] = json!(if added { "added" } else { "removed" });
        payload["installation"]["id"] = json!(repos[0].installation);
        payload["repositories_added"] = if added { list.clone() } else { json!([]) };
        payload["repositories_removed"] = if added { json!([]) } else { list };
        Self::new("installation_repositories", &payload)
    }

    /// `repository` with `action` (privatized, publicized, deleted, …):
    /// the repository as GitHub describes it after the change, `private` or not.
    pub fn repository(repo: &RepoHandle, action: &str, private: bool) -> Self {
        let push = fixture("push.json");
        let mut payload = json!({ "action": action, "repository": push["repository"], "sender": push["sender"] });
        patch_repository(&mut payload, repo);
        payload["repository"]["private"] = json!(private);
        Self::new("repository", &payload)
    }

    /// `repository` renamed: the repository is now `owner/new_name`.
    pub fn repository_renamed(repo: &RepoHandle, new_name: &str) -> Self {
        let mut hook = Self::repository(repo, "renamed", repo.private);
        let mut payload: Value = serde_json::from_slice(&hook.body).unwrap();
        let owner = repo.slug.split('/').next().unwrap();
        payload["repository"]["name"] = json!(new_name);
        payload["repository"]["full_name"] = json!(format!("{owner}/{new_name}"));
        payload["changes"] = json!({ "repository": { "name": { "from": repo.slug.split('/').nth(1) } } });
        hook.body = serde_json::to_vec(&payload).unwrap();
        hook
    }

    /// `check_run` rerequested (the Re-run button) on one of the fake's check runs.
    pub fn check_run_rerequested(repo: &RepoHandle, run: &super::fake_github::CheckRunRecord) -> Self {
        let mut payload = fixture("check_run.rerequested.json");
        patch_repository(&mut payload, repo);
        payload["action"] = json!("rerequested");
        payload["check_run"]["id"] = json!(run.id);
        payload["check_run"]["name"] = json!(run.name);
        payload["check_run"]["head_sha"] = json!(run.head_sha);
        payload["check_run"]["external_id"] = json!(run.external_id);
        Self::new("check_run", &payload)
    }

    /// `check_run` requested_action: a button with `identifier` was pressed.
    pub fn check_run_action(repo: &RepoHandle, run: &super::fake_github::CheckRunRecord, identifier: &str) -> Self {
        let mut payload = fixture("check_run.requested_action.json");
        patch_repository(&mut payload, repo);
        payload["action"] = json!("requested_action");
        payload["check_run"]["id"] = json!(run.id);
        payload["check_run"]["name"] = json!(run.name);
        payload["check_run"]["head_sha"] = json!(run.head_sha);
        payload["check_run"]["external_id"] = json!(run.external_id);
        payload["requested_action"] = json!({ "identifier": identifier });
        Self::new("check_run", &payload)
    }

    /// `check_suite` rerequested (Re-run all) for a commit.
    pub fn check_suite_rerequested(repo: &RepoHandle, sha: &str) -> Self {
        let mut payload = fixture("check_suite.rerequested.json");
        patch_repository(&mut payload, repo);
        payload["action"] = json!("rerequested");
        payload["check_suite"]["head_sha"] = json!(sha);
        Self::new("check_suite", &payload)
    }

    /// GitHub's `ping`.
    pub fn ping() -> Self {
        Self::new("ping", &fixture("ping.json"))
    }

    /// The same delivery again, as GitHub's "Redeliver" sends it.
    pub fn redelivery(&self) -> Self {
        self.clone()
    }

    /// `X-Hub-Signature-256` for this body.
    pub fn signature(&self) -> String {
        greenlight::github::webhook::sign(SECRET, &self.body)
    }
}
