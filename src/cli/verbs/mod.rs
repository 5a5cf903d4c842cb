//! One file per verb (or family of verbs).

pub mod approve;
pub mod audit;
pub mod changes;
pub mod deploy;
pub mod diff;
pub mod flow;
pub mod freeze;
pub mod history;
pub mod insights;
pub mod preview;
pub mod product;
pub mod status;
pub mod verify;
pub mod version;
pub mod veto;
pub mod web;
