//! The products part of the index: ProductVersions by product and by the apps they name,
//! ProductReleases by product and by Environment, and the Releases each ProductRelease runs (by
//! their label). Kept by the same watch events as the caches; readers look up, never scan.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use kube::ResourceExt;

use super::multimap::MultiMap;
use super::{Name, Seen, key_of};
use crate::api::{PRODUCT_RELEASE_LABEL, ProductRelease, ProductVersion, Release};

#[derive(Default)]
struct Inner {
    /// Each ProductVersion's product and apps.
    versions: HashMap<Name, (String, Vec<String>)>,
    versions_by_product: MultiMap<(String, String)>,
    versions_by_app: MultiMap<(String, String)>,
    /// Each ProductRelease's product and Environment.
    releases: HashMap<Name, (String, String)>,
    releases_by_product: MultiMap<(String, String)>,
    releases_by_environment: MultiMap<(String, String)>,
    releases_by_namespace: MultiMap<String>,
    /// Each labelled Release's ProductRelease.
    children: HashMap<Name, String>,
    children_by_owner: MultiMap<(String, String)>,
}

#[derive(Default)]
pub struct ProductIndex {
    inner: RwLock<Inner>,
}

impl ProductIndex {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn see_version(&self, pv: &ProductVersion, seen: Seen) {
        let (ns, name) = key_of(pv);
        let mut i = self.write();
        if let Some((product, apps)) = i.versions.remove(&(ns.clone(), name.clone())) {
            i.versions_by_product.remove(&(ns.clone(), product), &name);
            for app in apps {
                i.versions_by_app.remove(&(ns.clone(), app), &name);
            }
        }
        if seen == Seen::Present {
            let apps: Vec<String> = pv.spec.apps.iter().map(|a| a.app.clone()).collect();
            i.versions_by_product.insert((ns.clone(), pv.spec.product.clone()), &name);
            for app in &apps {
                i.versions_by_app.insert((ns.clone(), app.clone()), &name);
            }
            i.versions.insert((ns, name), (pv.spec.product.clone(), apps));
        }
    }

    pub fn see_product_release(&self, pr: &ProductRelease, seen: Seen) {
        let (ns, name) = key_of(pr);
        let mut i = self.write();
        if let Some((product, env)) = i.releases.remove(&(ns.clone(), name.clone())) {
            i.releases_by_product.remove(&(ns.clone(), product), &name);
            i.releases_by_environment.remove(&(ns.clone(), env), &name);
            i.releases_by_namespace.remove(&ns, &name);
        }
        if seen == Seen::Present {
            i.releases_by_product.insert((ns.clone(), pr.spec.product.clone()), &name);
            i.releases_by_environment.insert((ns.clone(), pr.spec.environment.clone()), &name);
            i.releases_by_namespace.insert(ns.clone(), &name);
            i.releases.insert((ns, name), (pr.spec.product.clone(), pr.spec.environment.clone()));
        }
    }

    /// Records the ProductRelease a Release's label names (what it says; whether it is really
    /// that one's is checked where it matters); returns it, before or after.
    pub fn see_release(&self, r: &Release, seen: Seen) -> Option<String> {
        let (ns, name) = key_of(r);
        let label = r.labels().get(PRODUCT_RELEASE_LABEL).cloned().filter(|_| seen == Seen::Present);
        let mut i = self.write();
        let before = i.children.get(&(ns.clone(), name.clone())).cloned();
        if before == label {
            return label;
        }
        if let Some(owner) = &before {
            i.children_by_owner.remove(&(ns.clone(), owner.clone()), &name);
            i.children.remove(&(ns.clone(), name.clone()));
        }
        if let Some(owner) = &label {
            i.children_by_owner.insert((ns.clone(), owner.clone()), &name);
            i.children.insert((ns, name), owner.clone());
        }
        label.or(before)
    }

    /// Names of the ProductVersions of `product`.
    pub fn versions_of(&self, namespace: &str, product: &str) -> Vec<String> {
        self.read().versions_by_product.get(&(namespace.to_string(), product.to_string()))
    }

    /// Names of the ProductVersions that name `app`.
    pub fn versions_naming(&self, namespace: &str, app: &str) -> Vec<String> {
        self.read().versions_by_app.get(&(namespace.to_string(), app.to_string()))
    }

    /// Names of the ProductReleases of `product`.
    pub fn releases_of(&self, namespace: &str, product: &str) -> Vec<String> {
        self.read().releases_by_product.get(&(namespace.to_string(), product.to_string()))
    }

    /// Names of the ProductReleases in `environment`.
    pub fn releases_in(&self, namespace: &str, environment: &str) -> Vec<String> {
        self.read().releases_by_environment.get(&(namespace.to_string(), environment.to_string()))
    }

    /// Names of the ProductReleases of `namespace`.
    pub fn releases_in_namespace(&self, namespace: &str) -> Vec<String> {
        self.read().releases_by_namespace.get(&namespace.to_string())
    }

    /// Names of the Releases labelled as `product_release`'s.
    pub fn children_of(&self, namespace: &str, product_release: &str) -> Vec<String> {
        self.read().children_by_owner.get(&(namespace.to_string(), product_release.to_string()))
    }
}
