//! A product against the same apps as Releases: one ProductVersion of `apps` apps, run in each of
//! the 10 Environments by a ProductRelease (`apps × 10` Releases made and pinned by the products),
//! against the same `apps × 10` Releases applied one by one. Same operator, same bed, alternating.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use tuskfish::api::{Phase, ProductRelease, ProductVersion};

use super::{
    APPLY_CONCURRENCY, ENVS, World, operator, prepare, remove_world, ssa, tuskfish_converge, wait_until,
};

#[derive(Default)]
pub struct Cost {
    /// Releases in each run.
    pub n: usize,
    /// Seconds to all Healthy: the Releases applied one by one, and the products.
    pub releases: Vec<f64>,
    pub products: Vec<f64>,
}

impl Cost {
    pub fn section(&self) -> String {
        let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
        let list = |v: &[f64]| v.iter().map(|s| format!("{s:.1}")).collect::<Vec<_>>().join(", ");
        let (r, p) = (mean(&self.releases), mean(&self.products));
        format!(
            "Products: one product of {} apps in {ENVS} Environments (its {} Releases made and pinned by the 10 ProductReleases) against the same {} Releases applied one by one, alternating: Releases {r:.1} s (runs: {}), products {p:.1} s (runs: {}); ratio {:.2}. The product's apps have no order (`after`), as the Releases have no `dependsOn`; timed from the first apply until every ProductRelease (every Release) is Healthy.\n",
            self.n / ENVS,
            self.n,
            self.n,
            list(&self.releases),
            list(&self.products),
            if r > 0.0 { p / r } else { 0.0 },
        )
    }
}

/// `rounds` × (Releases, then products), each on a fresh operator and pipeline.
pub async fn run(client: &Client, apps: usize, rounds: usize) -> Cost {
    let mut cost = Cost { n: apps * ENVS, ..Default::default() };
    for round in 0..rounds {
        eprintln!("bench: {} Releases one by one (round {})", apps * ENVS, round + 1);
        let op = operator(16, &format!("pr{round}"), &[]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let w = World { ns: format!("bpr-{round}"), envs: ENVS, apps };
        let (secs, _) = tuskfish_converge(client, &[&w], &[op.proc.0.id()]).await;
        cost.releases.push(secs);
        remove_world(client, &w).await;
        drop(op);

        eprintln!("bench: a product of {apps} apps in {ENVS} Environments (round {})", round + 1);
        let op = operator(16, &format!("pp{round}"), &[]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let w = World { ns: format!("bpp-{round}"), envs: ENVS, apps };
        cost.products.push(product_converge(client, &w).await);
        remove_world(client, &w).await;
        drop(op);
    }
    cost
}

/// Environments, AppVersions and the ProductVersion first (not timed), then one ProductRelease per
/// Environment; seconds until every ProductRelease is Healthy (all its apps are).
async fn product_converge(client: &Client, w: &World) -> f64 {
    prepare(client, w).await;
    let apps: Vec<_> = (0..w.apps).map(|a| json!({"app": format!("app{a}"), "version": "1.0.0"})).collect();
    ssa(
        client,
        json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "ProductVersion",
        "metadata": {"name": "platform-1.0.0", "namespace": w.ns},
        "spec": {"product": "platform", "version": "1.0.0", "apps": apps}}),
    )
    .await;
    let ready = |c: &[tuskfish::api::Condition]| tuskfish::api::is_true(c, "Ready");
    let pvs: Api<ProductVersion> = Api::namespaced(client.clone(), &w.ns);
    wait_until(pvs, watcher::Config::default(), 1, move |p: &ProductVersion| {
        p.status.as_ref().is_some_and(|s| ready(&s.conditions))
    })
    .await;

    let started = Instant::now();
    stream::iter(0..w.envs)
        .for_each_concurrent(APPLY_CONCURRENCY, |e| async move {
            ssa(
                client,
                json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "ProductRelease",
                "metadata": {"name": format!("platform-e{e}"), "namespace": w.ns},
                "spec": {"product": "platform", "environment": format!("e{e}"), "version": "1.0.0"}}),
            )
            .await
        })
        .await;
    let products: Api<ProductRelease> = Api::namespaced(client.clone(), &w.ns);
    wait_until(products, watcher::Config::default(), w.envs, |p: &ProductRelease| {
        p.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Healthy))
    })
    .await;
    started.elapsed().as_secs_f64()
}
