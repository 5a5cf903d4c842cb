//! What the operator tells about itself: requests to the API server, Prometheus metrics, health.

pub mod http;
mod metrics;
mod request_counter;

pub use metrics::{
    AgentLabel, ClusterLabel, ControllerLabel, EnvironmentLabel, KindLabel, MetricDoc, Metrics, SharedMetrics,
};
pub use request_counter::{RequestCounter, RequestCounts};
