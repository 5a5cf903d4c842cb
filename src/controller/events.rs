//! Emitting Events: in the background, failures logged, never fatal.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
use sha2::Digest;

use super::context::Context;
use crate::api::{MESSAGE_LIMIT, Reason, truncate_message};

/// Emits an Event in the background: a failure is logged, never fatal, and the reconcile does
/// not wait for the API server's answer (Events are a report, not a step of the rollout).
pub fn emit(ctx: &Context, reference: &ObjectReference, type_: EventType, reason: Reason, note: String) {
    let reason = reason.to_string();
    // kube's recorder folds events with the same (type, reason, action, object) into one series and
    // keeps the first note; a digest of the note in `action` keeps "rolling out 1.3.11" from being
    // shown as a repeat of "rolling out 1.3.10", while true repeats still fold.
    let digest = sha2::Sha256::digest(note.as_bytes());
    let action = format!("{reason}/{:02x}{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2], digest[3]);
    let ev =
        Event { type_, reason, note: Some(truncate_message(note, MESSAGE_LIMIT)), action, secondary: None };
    let (recorder, reference) = (ctx.recorder.clone(), reference.clone());
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, "could not publish event");
        }
    });
}
