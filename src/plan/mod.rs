//! Pure decisions over plain data: which AppVersion a Release should run, whether the live objects
//! need an apply, how healthy a rollout is, and what the Release status becomes. No I/O here.

pub mod agent_link;
pub mod audit;
pub mod changes;
pub mod coalesce;
pub mod drift;
pub mod gates;
pub mod grants;
pub mod health;
pub mod insights;
pub mod intent;
pub mod peers;
pub mod product;
pub mod record;
pub mod rollback;
pub mod shards;
pub mod status;
pub mod target;
pub mod verification;
pub mod wait;

#[cfg(test)]
pub(crate) mod proptests;

pub use health::{Health, WorkloadState, assess};
pub use status::{Outcome, next_status};
pub use target::{Decision, Inputs, Mode, Target, auto_rollback, decide, mode_of, select_target, spec_hash};
pub use wait::{Blocked, Held};
