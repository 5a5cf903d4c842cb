//! Pure decisions over plain data: which AppVersion a Release should run, whether the live objects
//! need an apply, how healthy a rollout is, and what the Release status becomes. No I/O here.

pub mod drift;
pub mod health;
pub mod status;
pub mod target;

pub use health::{Health, WorkloadState, assess};
pub use status::{Outcome, next_status};
pub use target::{Blocked, Target, select_target, spec_hash};
