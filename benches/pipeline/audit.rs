//! What the audit records cost: writes to Ledgers per rollout recorded, and the bytes a thousand
//! records take in etcd (the Ledgers as stored: custom resources are kept as JSON).

use kube::api::ListParams;
use kube::{Api, Client};
use tuskfish::api::{Ledger, RecordKind};

/// Ledger writes the API server has served so far (creates and patches, by everyone).
pub async fn ledger_writes(client: &Client) -> f64 {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("resource=\"ledgers\""))
        .filter(|l| ["POST", "PATCH", "APPLY", "PUT"].iter().any(|v| l.contains(&format!("verb=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    pub ledgers: usize,
    pub records: usize,
    pub rollouts: usize,
    pub writes: f64,
    pub bytes: usize,
}

impl Measured {
    pub fn row(&self) -> String {
        let per = |x: f64, of: usize| if of == 0 { 0.0 } else { x / of as f64 };
        format!(
            "| {} | {} | {} | {:.2} | {:.0} |",
            self.ledgers,
            self.records,
            self.rollouts,
            per(self.writes, self.records),
            per(self.bytes as f64 * 1000.0, self.records),
        )
    }
}

/// The Ledgers of namespace `ns` now, with the Ledger writes since `writes0`.
pub async fn measure(client: &Client, ns: &str, writes0: f64) -> Measured {
    let api: Api<Ledger> = Api::namespaced(client.clone(), ns);
    let ledgers = api.list(&ListParams::default()).await.unwrap().items;
    let records = ledgers.iter().map(|l| l.spec.records.len()).sum();
    let rollouts = ledgers
        .iter()
        .flat_map(|l| l.spec.records.values())
        .filter(|r| r.kind == RecordKind::Rollout)
        .count();
    let bytes = ledgers.iter().map(|l| serde_json::to_vec(l).map_or(0, |v| v.len())).sum();
    Measured {
        ledgers: ledgers.len(),
        records,
        rollouts,
        writes: ledger_writes(client).await - writes0,
        bytes,
    }
}

pub const HEADER: &str = "| Ledgers | records | of them rollouts | Ledger writes / record | bytes / 1,000 records |\n|---|---|---|---|---|\n";

/// Converge times and server writes per Release without audit records and with them (one run
/// each per round, alternating).
#[derive(Clone, Debug, Default)]
pub struct Cost {
    pub n: usize,
    /// (seconds, server writes per Release) per run.
    pub without: Vec<(f64, f64)>,
    pub with: Vec<(f64, f64)>,
}

impl Cost {
    pub fn section(&self) -> String {
        let mean = |runs: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
            runs.iter().map(f).sum::<f64>() / runs.len().max(1) as f64
        };
        let list =
            |runs: &[(f64, f64)]| runs.iter().map(|r| format!("{:.1}", r.0)).collect::<Vec<_>>().join(", ");
        let (off, on) = (mean(&self.without, |r| r.0), mean(&self.with, |r| r.0));
        let (w_off, w_on) = (mean(&self.without, |r| r.1), mean(&self.with, |r| r.1));
        format!(
            "\nWhat audit records cost the converge at N = {}: the same run without records (`--audit-records=false`) \
             and with them, alternating. Converge {off:.1} s without ({}), {on:.1} s with ({}): {:+.1} %; server writes \
             per Release {w_off:.2} without, {w_on:.2} with ({:+.2}: the first rollout's record of each Release).\n",
            self.n,
            list(&self.without),
            list(&self.with),
            (on / off.max(f64::EPSILON) - 1.0) * 100.0,
            w_on - w_off,
        )
    }
}
