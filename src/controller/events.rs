//! Publishing Events: failures to publish are logged, never fatal.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

use super::context::Context;

/// Publishes an Event; a failure to publish is logged, never fatal.
pub async fn publish(
    ctx: &Context,
    reference: &ObjectReference,
    type_: EventType,
    reason: impl Into<String>,
    note: String,
) {
    let reason = reason.into();
    let ev = Event {
        type_,
        reason: reason.clone(),
        note: Some(truncate(note, 1000)),
        action: reason,
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, reference).await {
        tracing::warn!(error = %e, "could not publish event");
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}
