//! Gather: the objects one Release's decision depends on, found through the index (never a scan of
//! a cache) and held as the cache's own `Arc`s (no copies).

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::{AppVersion, Approval, Environment, Release};
use crate::controller::context::{Context, cached};
use crate::plan::Inputs;
use crate::plan::record::StatusFacts;

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
}

impl Related {
    pub(super) fn gather(ctx: &Context, rel: &Release) -> Self {
        let (ix, stores) = (&ctx.index, &ctx.stores);
        let ns = rel.namespace().unwrap_or_default();
        let (app, name) = (&rel.spec.app, rel.name_any());
        Self {
            environment: stores.environments.get(&ObjectRef::new(&rel.spec.environment).within(&ns)),
            app_versions: cached(&stores.app_versions, &ns, ix.app_versions_of(&ns, app)),
            same_app: cached(&stores.releases, &ns, ix.releases_of_app(&ns, app)),
            in_environment: cached(
                &stores.releases,
                &ns,
                ix.releases_in_environment(&ns, &rel.spec.environment),
            ),
            approvals: cached(&stores.approvals, &ns, ix.approvals_for(&ns, &name)),
            published: ix.published_versions(&ns, app),
            name,
        }
    }

    pub(super) fn environment(&self) -> Option<&Environment> {
        self.environment.as_deref()
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
            approvals: self.approvals.iter().map(AsRef::as_ref).collect(),
            peers,
            release,
            env: self.environment(),
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
