//! Gather: the objects one Release's decision depends on, found through the index (never a scan of
//! a cache) and held as the cache's own `Arc`s (no copies).

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::{AppVersion, Approval, Environment, ProductRelease, Release, ReleaseStatus};
use crate::api::{owned_by, owner_name};
use crate::controller::caches::cached;
use crate::controller::context::Context;
use crate::plan::record::StatusFacts;
use crate::plan::target::ProductLink;
use crate::plan::{Inputs, auto_rollback, rollback};

/// The status a decision is made over: the one held back after the last apply (the truth of what
/// was applied, see `deferred`), else the server's; with a version that just failed marked failed
/// (an automatic rollback).
pub(super) struct Basis {
    pub prev: ReleaseStatus,
    /// The version this reconcile marked failed.
    pub rolled_back: Option<String>,
    /// The end of the window of the status held back, when there is one.
    pub held_until: Option<std::time::Instant>,
    /// The Release with `prev` as its status: what the decision reads.
    pub release: Release,
}

impl Basis {
    pub(super) fn of(ctx: &Context, rel: &Release) -> Self {
        let deferred = ctx.deferred.get(rel);
        let held_until = deferred.as_ref().map(|d| d.due);
        let base = deferred.map_or_else(|| rel.status.clone().unwrap_or_default(), |d| d.status);
        let (prev, rolled_back) = rollback::decide_on(base, auto_rollback(rel));
        let release = Release { status: Some(prev.clone()), ..rel.clone() };
        Self { prev, rolled_back, held_until, release }
    }
}

pub(super) struct Related {
    name: String,
    environment: Option<Arc<Environment>>,
    app_versions: Vec<Arc<AppVersion>>,
    /// The app's Releases in every Environment, this one included.
    same_app: Vec<Arc<Release>>,
    /// The Releases in this Release's Environment, this one included.
    in_environment: Vec<Arc<Release>>,
    approvals: Vec<Arc<Approval>>,
    /// The app's published versions, with the AppVersion's name.
    published: Vec<(semver::Version, String)>,
    product: Product,
}

/// How the Release stands to products (see [`ProductLink`]), holding the cache's object.
enum Product {
    None,
    RunBy(Arc<ProductRelease>),
    OwnerMissing(String),
    TakenBy { product_release: String, release: String },
}

impl Product {
    /// From its owner reference, or else from those of the other Releases of its app there.
    fn of(ctx: &Context, rel: &Release, ns: &str, in_environment: &[Arc<Release>]) -> Self {
        let owner_of = |r: &Release| {
            let name = owner_name(r)?;
            let pr = ctx.stores.product_releases.get(&ObjectRef::new(name).within(ns));
            Some(pr.filter(|pr| owned_by(r, pr)).ok_or_else(|| name.to_string()))
        };
        match owner_of(rel) {
            Some(Ok(pr)) => return Product::RunBy(pr),
            Some(Err(name)) => return Product::OwnerMissing(name),
            None => {}
        }
        let name = rel.name_any();
        let twins = in_environment.iter().filter(|r| r.spec.app == rel.spec.app && r.name_any() != name);
        for twin in twins {
            if let Some(Ok(pr)) = owner_of(twin) {
                return Product::TakenBy { product_release: pr.name_any(), release: twin.name_any() };
            }
        }
        Product::None
    }

    fn link(&self) -> ProductLink<'_> {
        match self {
            Product::None => ProductLink::None,
            Product::RunBy(pr) => ProductLink::RunBy(pr),
            Product::OwnerMissing(n) => ProductLink::OwnerMissing(n.clone()),
            Product::TakenBy { product_release, release } => {
                ProductLink::TakenBy { product_release: product_release.clone(), release: release.clone() }
            }
        }
    }
}

impl Related {
    pub(super) fn gather(ctx: &Context, rel: &Release) -> Self {
        let (ix, stores) = (&ctx.index, &ctx.stores);
        let ns = rel.namespace().unwrap_or_default();
        let (app, name) = (&rel.spec.app, rel.name_any());
        let in_environment =
            cached(&stores.releases, &ns, ix.releases_in_environment(&ns, &rel.spec.environment));
        Self {
            product: Product::of(ctx, rel, &ns, &in_environment),
            environment: stores.environments.get(&ObjectRef::new(&rel.spec.environment).within(&ns)),
            app_versions: cached(&stores.app_versions, &ns, ix.app_versions_of(&ns, app)),
            same_app: cached(&stores.releases, &ns, ix.releases_of_app(&ns, app)),
            in_environment,
            approvals: cached(&stores.approvals, &ns, ix.approvals_for(&ns, &name)),
            published: ix.published_versions(&ns, app),
            name,
        }
    }

    /// What selection decides over, for `release` (the Release with the status decided on).
    pub(super) fn inputs<'a>(&'a self, release: &'a Release, now: jiff::Timestamp) -> Inputs<'a> {
        let peers: Vec<&Release> =
            self.in_environment.iter().filter(|r| r.name_any() != self.name).map(AsRef::as_ref).collect();
        let upstream = release.spec.promote_from.as_ref().map_or_else(Vec::new, |from| {
            self.same_app
                .iter()
                .filter(|r| r.spec.environment == from.environment)
                .map(AsRef::as_ref)
                .collect()
        });
        Inputs {
            twins: peers.iter().filter(|r| r.spec.app == release.spec.app).map(|r| r.name_any()).collect(),
            product: self.product.link(),
            approvals: self.approvals.iter().map(AsRef::as_ref).collect(),
            peers,
            release,
            env: self.environment.as_deref(),
            app_versions: self.app_versions.iter().map(AsRef::as_ref).collect(),
            upstream,
            now,
        }
    }

    /// What the status reports on beyond the Release itself.
    pub(super) fn facts<'a>(&'a self, app_versions: &'a [&'a AppVersion]) -> StatusFacts<'a> {
        StatusFacts { app_versions, published: &self.published, same_app: &self.same_app }
    }
}
