//! Prometheus metrics of the operator (text format on `/metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::RequestCounts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// `release`, `environment` or `appversion`.
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub controller: &'static str,
    /// `ok` or the error's reason.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutLabels {
    pub environment: String,
    /// `started`, `succeeded` or `failed`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvironmentLabel {
    pub environment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Another cluster, by the Secret its kubeconfig is in.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    pub namespace: String,
    pub secret: String,
}

/// An agent, by the pipeline namespace it serves.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabel {
    pub namespace: String,
    pub agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    /// `read` or `write`.
    pub kind: &'static str,
}

/// Every metric, shared by the controllers, the watches and the HTTP endpoint.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabel, Histogram>,
    pub reconciles_in_flight: Family<ControllerLabel, Gauge>,
    /// Objects queued for reconciliation by the watch mappings (the controller queue's input).
    pub triggers: Family<ControllerLabel, Counter>,
    pub rollouts: Family<RolloutLabels, Counter>,
    pub rollbacks: Family<EnvironmentLabel, Counter>,
    pub appversion_to_rollout: Histogram,
    /// A change's first publish to its first successful rollout in an environment.
    pub lead_time: Family<EnvironmentLabel, Histogram>,
    /// A failure (a failed rollout, or one rolled back) to the next successful rollout.
    pub time_to_restore: Family<EnvironmentLabel, Histogram>,
    pub watch_restarts: Family<KindLabel, Counter>,
    api_requests: Family<RequestLabel, Counter>,
    pub leader: Gauge,
    /// 1 while another cluster answers (0: connecting, unreachable, or its kubeconfig is unusable).
    pub cluster_reachable: Family<ClusterLabel, Gauge>,
    /// 1 while an agent's Lease is current (0: it has not reported within it).
    pub agent_connected: Family<AgentLabel, Gauge>,
    /// Every cache has listed once (what `/readyz` reports).
    pub ready: AtomicBool,
    described: Vec<MetricDoc>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut reg = Described::new(Registry::with_prefix("tuskfish"));
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        reg.add("reconciles", "Reconciles by controller and result", reconciles.clone());
        let reconcile_duration = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        reg.add("reconcile_duration_seconds", "Time one reconcile takes", reconcile_duration.clone());
        let reconciles_in_flight = Family::<ControllerLabel, Gauge>::default();
        reg.add("reconciles_in_flight", "Reconciles running now", reconciles_in_flight.clone());
        let triggers = Family::<ControllerLabel, Counter>::default();
        reg.add("triggers", "Objects queued for reconciliation by watch events", triggers.clone());
        let rollouts = Family::<RolloutLabels, Counter>::default();
        reg.add("rollouts", "Rollouts by environment and result", rollouts.clone());
        let rollbacks = Family::<EnvironmentLabel, Counter>::default();
        reg.add("rollbacks", "Automatic rollbacks by environment", rollbacks.clone());
        let appversion_to_rollout = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        reg.add(
            "appversion_to_rollout_seconds",
            "From an AppVersion's creation to the start of its rollout in an environment",
            appversion_to_rollout.clone(),
        );
        // A minute to about 45 days.
        let days = || Histogram::new(exponential_buckets(60.0, 2.0, 17));
        let lead_time = Family::<EnvironmentLabel, Histogram>::new_with_constructor(days);
        reg.add(
            "lead_time_seconds",
            "Lead time for changes: from a change id's first published AppVersion to its first successful rollout in an environment",
            lead_time.clone(),
        );
        let time_to_restore = Family::<EnvironmentLabel, Histogram>::new_with_constructor(days);
        reg.add(
            "time_to_restore_seconds",
            "From a failure in an environment (a failed rollout, or the start of a rollback) to the next successful rollout",
            time_to_restore.clone(),
        );
        let watch_restarts = Family::<KindLabel, Counter>::default();
        reg.add("watch_restarts", "Watch errors after which the watch restarts", watch_restarts.clone());
        let api_requests = Family::<RequestLabel, Counter>::default();
        reg.add(
            "api_requests",
            "Requests sent to the API server: reads (watches included), writes, and writes to Leases (lease: the only writes at rest)",
            api_requests.clone(),
        );
        let leader = Gauge::default();
        reg.add(
            "leader",
            "Leases this replica holds: 1 while it leads; with --shards, the shards it serves",
            leader.clone(),
        );
        let cluster_reachable = Family::<ClusterLabel, Gauge>::default();
        reg.add(
            "cluster_reachable",
            "1 while an Environment's other cluster answers, by its kubeconfig Secret",
            cluster_reachable.clone(),
        );
        let agent_connected = Family::<AgentLabel, Gauge>::default();
        reg.add(
            "agent_connected",
            "1 while an agent serving Environments reports within its lease",
            agent_connected.clone(),
        );
        let Described { registry, described } = reg;
        Self {
            registry,
            described,
            reconciles,
            reconcile_duration,
            reconciles_in_flight,
            triggers,
            rollouts,
            rollbacks,
            appversion_to_rollout,
            lead_time,
            time_to_restore,
            watch_restarts,
            api_requests,
            leader,
            cluster_reachable,
            agent_connected,
            ready: AtomicBool::new(false),
        }
    }
}

/// The registry as metrics are registered in it, and each one's name, type and help as it is
/// exposed (for the generated reference: a family with no series yet is not in the exposition).
struct Described {
    registry: Registry,
    described: Vec<MetricDoc>,
}

/// One metric as `/metrics` exposes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricDoc {
    pub name: String,
    pub kind: &'static str,
    pub help: String,
}

impl Described {
    fn new(registry: Registry) -> Self {
        Self { registry, described: Vec::new() }
    }

    fn add<M: prometheus_client::registry::Metric + EncodeMetric + Clone>(
        &mut self,
        name: &str,
        help: &str,
        metric: M,
    ) {
        let kind = match metric.metric_type() {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            _ => "untyped",
        };
        let suffix = if kind == "counter" { "_total" } else { "" };
        self.described.push(MetricDoc { name: format!("tuskfish_{name}{suffix}"), kind, help: help.into() });
        self.registry.register(name, help, metric);
    }
}

impl Metrics {
    /// Every metric this process exposes, in the order registered.
    pub fn described(&self) -> &[MetricDoc] {
        &self.described
    }

    pub fn observe_reconcile(&self, controller: &'static str, result: String, took: Duration) {
        self.reconciles.get_or_create(&ReconcileLabels { controller, result }).inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabel { controller: controller.to_string() })
            .observe(took.as_secs_f64());
    }

    pub fn rollout(&self, environment: &str, result: &'static str) {
        self.rollouts.get_or_create(&RolloutLabels { environment: environment.to_string(), result }).inc();
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition; request counts are brought up to date first.
    pub fn encode(&self, requests: &RequestCounts) -> String {
        let counts =
            [("read", requests.reads()), ("write", requests.writes()), ("lease", requests.lease_writes())];
        for (kind, total) in counts {
            let c = self.api_requests.get_or_create(&RequestLabel { kind });
            c.inc_by(total.saturating_sub(c.get()));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart's Grafana dashboard, as Grafana reads it: a dashboard model whose panels each
    /// query, by PromQL, only series the operator exports (a renamed metric would leave a panel
    /// blank). Grafana's own schema validator is not at hand here; this checks its structure.
    #[test]
    fn the_dashboard_queries_only_what_the_operator_exports() {
        let text = include_str!("../../charts/tuskfish/dashboards/delivery.json");
        let dash: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(dash["uid"], "tuskfish-delivery");
        assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
        let exported: Vec<String> = Metrics::default().described().iter().map(|m| m.name.clone()).collect();
        let series = regex::Regex::new(r"tuskfish_[a-z_]+").unwrap();
        let panels = dash["panels"].as_array().unwrap();
        assert!(panels.len() >= 4, "the four figures at least");
        let mut ids = std::collections::BTreeSet::new();
        for p in panels {
            assert!(ids.insert(p["id"].as_u64().unwrap()), "panel ids are unique");
            assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
            let grid = &p["gridPos"];
            assert!(["h", "w", "x", "y"].iter().all(|k| grid[k].is_u64()), "{p}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{p}");
            for t in targets {
                let expr = t["expr"].as_str().unwrap();
                for m in series.find_iter(expr).map(|m| m.as_str()) {
                    let base = ["_bucket", "_total"].iter().fold(m, |n, s| n.strip_suffix(s).unwrap_or(n));
                    assert!(
                        exported
                            .iter()
                            .any(|e| e == m || e == base || e.strip_suffix("_total") == Some(base)),
                        "{m} in {:?} is not exported ({exported:?})",
                        p["title"]
                    );
                }
            }
        }
        let figures: Vec<&str> =
            ["tuskfish_lead_time_seconds", "tuskfish_time_to_restore_seconds", "tuskfish_rollouts_total"]
                .into_iter()
                .filter(|m| !text.contains(m))
                .collect();
        assert!(figures.is_empty(), "not on the dashboard: {figures:?}");
    }

    #[test]
    fn exposition_has_every_family_with_its_labels() {
        let m = Metrics::default();
        m.observe_reconcile("release", "ok".into(), Duration::from_millis(3));
        m.rollout("prod", "started");
        m.rollbacks.get_or_create(&EnvironmentLabel { environment: "dev".into() }).inc();
        m.leader.set(1);
        let text = m.encode(&RequestCounts::default());
        for line in [
            r#"tuskfish_reconciles_total{controller="release",result="ok"} 1"#,
            r#"tuskfish_reconcile_duration_seconds_count{controller="release"} 1"#,
            r#"tuskfish_rollouts_total{environment="prod",result="started"} 1"#,
            r#"tuskfish_rollbacks_total{environment="dev"} 1"#,
            r#"tuskfish_api_requests_total{kind="write"} 0"#,
            "tuskfish_leader 1",
            "# TYPE tuskfish_appversion_to_rollout_seconds histogram",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
    }
}
