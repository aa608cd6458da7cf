//! Newtypes for the identifiers that travel through the system, so that a
//! build id is never passed where a stage id or a check run id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A GitHub App installation id (`installation.id` in every App delivery).
    InstallationId(u64)
);
id_type!(
    /// GitHub's numeric repository id; also the repo's id in the Drone API.
    RepoId(i64)
);
id_type!(
    /// A build's global id (Drone's `build.id`).
    BuildId(i64)
);
id_type!(
    /// A stage's global id (Drone's `stage.id`); one stage per pipeline.
    StageId(i64)
);
id_type!(
    /// A GitHub check run id.
    CheckRunId(u64)
);

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A full 40-hex git commit sha.
    Sha
);
text_id!(
    /// The `X-GitHub-Delivery` GUID. GitHub reuses it when a delivery is
    /// redelivered, so it identifies the event, not one HTTP request.
    DeliveryId
);
text_id!(
    /// A Redis stream entry id (`1700000000000-0`): the queue's handle on one
    /// delivery or stage job, which planning is idempotent per.
    EntryId
);

impl Sha {
    /// The first seven characters, as GitHub shows them.
    pub fn short(&self) -> &str {
        self.0.get(..7).unwrap_or(&self.0)
    }
}
