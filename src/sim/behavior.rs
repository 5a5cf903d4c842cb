//! How a simulated pod behaves, read from its annotations and image.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::duration::parse_duration;

pub const BEHAVIOR_ANNOTATION: &str = "sim.tuskfish.dev/behavior";
pub const READY_AFTER_ANNOTATION: &str = "sim.tuskfish.dev/ready-after";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    Ready,
    NeverReady,
    ReadyAfter(Duration),
}

pub fn behavior_of(pod: &Pod) -> Behavior {
    let annotations = pod.metadata.annotations.as_ref();
    let get = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
    let image_never_ready = pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| c.image.as_deref().is_some_and(|i| i.contains("never-ready")))
    });
    if get(BEHAVIOR_ANNOTATION) == Some("never-ready") || image_never_ready {
        return Behavior::NeverReady;
    }
    match get(READY_AFTER_ANNOTATION).and_then(parse_duration) {
        Some(d) => Behavior::ReadyAfter(d),
        None => Behavior::Ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: serde_json::Value, image: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": image}]}}))
        .unwrap()
    }

    #[test]
    fn behaviours() {
        assert_eq!(behavior_of(&pod(json!({}), "app:1.0")), Behavior::Ready);
        assert_eq!(behavior_of(&pod(json!({}), "app:1.1-never-ready")), Behavior::NeverReady);
        assert_eq!(
            behavior_of(&pod(json!({BEHAVIOR_ANNOTATION: "never-ready"}), "app:1")),
            Behavior::NeverReady
        );
        assert_eq!(
            behavior_of(&pod(json!({READY_AFTER_ANNOTATION: "5s"}), "app:1")),
            Behavior::ReadyAfter(Duration::from_secs(5))
        );
        assert_eq!(behavior_of(&pod(json!({READY_AFTER_ANNOTATION: "soon"}), "app:1")), Behavior::Ready);
    }
}
