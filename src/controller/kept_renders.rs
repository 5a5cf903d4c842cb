//! Chart outputs kept durably. Helm renders a chart anew each time it runs: a chart that
//! generates a password, a token or a certificate at render time (`randAlphaNum`, `genCA`) gets a
//! new one each time, so rendering again after an operator restart, a new leader or a cache
//! eviction would roll the running app over to new credentials and record a rollout that never
//! was. What a rollout rendered is therefore kept, in a Secret of the operator's own namespace (no
//! tenant can write there, so none can forge another's, or its own, kept output), one per
//! Release: its output key (chart digest, values, names, place) and Helm's output, compressed.
//! The next render with the same key reads it instead of running Helm; a new rollout (another
//! version, other values, another Environment) has another key, renders anew and replaces it.
//!
//! Argo CD renders on every refresh (the same rotation, unless a chart uses `lookup`, which it
//! cannot either); Flux keeps each release in Helm's own storage in the target namespace. This is
//! Flux's choice, kept where only the operator reaches.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api::{FIELD_MANAGER, labels};

/// The most compressed bytes kept (a Secret holds at most 1 MiB in all).
pub const KEPT_LIMIT: usize = 900 * 1024;
/// Data keys of a kept output.
const KEY: &str = "key";
const MANIFEST: &str = "manifest.gz";
/// The uid of the Release it was kept for: a Release made again under the same name is another
/// (it must not inherit the former one's generated secrets).
const UID: &str = "uid";
/// The Secret type of a kept output (what the sweep lists).
const TYPE: &str = "tuskfish.dev/rendered";
/// Whose it is, whole (a label value holds at most 63 characters): read by the sweep, which lists
/// metadata only.
const PIPELINE_ANNOTATION: &str = "tuskfish.dev/pipeline";
const RELEASE_ANNOTATION: &str = "tuskfish.dev/release";
const UID_ANNOTATION: &str = "tuskfish.dev/release-uid";

/// Where rendered outputs are kept: a namespace of the operator's own.
#[derive(Clone)]
pub struct KeptRenders {
    client: Client,
    namespace: String,
    /// The Release uid and key each Secret holds, as this process last read or wrote it: an
    /// output in memory is only used while the Secret holds it for that very Release (else it was
    /// never kept, another was since, or it is a former Release's of the same name). An output
    /// too large to keep is recorded here too: it is used from memory, as nothing better exists.
    holds: Arc<Mutex<HashMap<String, (String, String)>>>,
}

/// The Release a kept output was kept for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner<'a> {
    pub pipeline: &'a str,
    pub release: &'a str,
    pub uid: &'a str,
}

/// Why a kept output could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeptError {
    #[error("the output kept in Secret {namespace}/{name} cannot be read: {source}")]
    Read { namespace: String, name: String, source: kube::Error },
    #[error("the outputs kept in namespace {namespace} cannot be listed: {source}")]
    List { namespace: String, source: kube::Error },
    #[error("the output could not be kept in Secret {namespace}/{name}: {source}")]
    Write { namespace: String, name: String, source: kube::Error },
    #[error("the output is {size} bytes compressed, more than the {KEPT_LIMIT} a Secret can keep")]
    TooLarge { size: usize },
}

impl KeptRenders {
    pub fn new(client: Client, namespace: String) -> Self {
        Self { client, namespace, holds: Arc::default() }
    }

    /// Whether the Secret of `owner` holds output `key` for it, as far as this process knows (or
    /// the output could not be kept: see [`Self::cannot_keep`]).
    pub fn holds(&self, owner: &Owner<'_>, key: &str) -> bool {
        let holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        holds.get(&Self::name(owner.pipeline, owner.release)).is_some_and(|(u, k)| u == owner.uid && k == key)
    }

    /// Output `key` of `owner` is too large to keep: it is used from memory all the same (rendered
    /// anew after a restart, as before outputs were kept), not rendered again on every reconcile.
    pub fn cannot_keep(&self, owner: &Owner<'_>, key: &str) {
        self.held(&Self::name(owner.pipeline, owner.release), Some((owner.uid, key)));
    }

    fn held(&self, name: &str, what: Option<(&str, &str)>) {
        let mut holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        match what {
            Some((uid, key)) => holds.insert(name.to_string(), (uid.to_string(), key.to_string())),
            None => holds.remove(name),
        };
    }

    /// The Secret of Release `release` of pipeline `pipeline`: named by a digest (a pipeline and a
    /// Release name together may be longer than a Secret's name may be).
    pub fn name(pipeline: &str, release: &str) -> String {
        let digest = Sha256::digest(format!("{pipeline}/{release}").as_bytes());
        let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
        format!("tuskfish-render-{hex}")
    }

    fn api(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Helm's output kept for `key` and this very Release, if it was (`None`: none kept, another
    /// rollout's, or another Release's of the same name); at most `limit` bytes of it.
    pub async fn load(
        &self,
        owner: &Owner<'_>,
        key: &str,
        limit: usize,
    ) -> Result<Option<String>, KeptError> {
        let name = Self::name(owner.pipeline, owner.release);
        let secret = self.api().get_opt(&name).await.map_err(|source| KeptError::Read {
            namespace: self.namespace.clone(),
            name: name.clone(),
            source,
        })?;
        let Some(data) = secret.and_then(|s| s.data) else { return Ok(None) };
        let is = |field: &str, value: &str| data.get(field).map(|v| v.0.as_slice()) == Some(value.as_bytes());
        if !is(KEY, key) || !is(UID, owner.uid) {
            return Ok(None);
        }
        // Unreadable content is as good as none: rendered anew and kept again.
        let manifest = data.get(MANIFEST).and_then(|m| unpack(&m.0, limit));
        if manifest.is_some() {
            self.held(&name, Some((owner.uid, key)));
        }
        Ok(manifest)
    }

    /// Keeps `manifest` (Helm's output) for `key`, replacing what `owner` had kept.
    pub async fn save(&self, owner: &Owner<'_>, key: &str, manifest: &str) -> Result<(), KeptError> {
        let packed = pack(manifest);
        if packed.len() > KEPT_LIMIT {
            return Err(KeptError::TooLarge { size: packed.len() });
        }
        let Owner { pipeline, release, uid } = *owner;
        let name = Self::name(pipeline, release);
        // Whose it is: whole in annotations (what the sweep reads), and as labels for people when
        // they fit (a name too long for a label value is refused at rendering anyway; it must not
        // keep the output from being kept first).
        let mut labelled = serde_json::Map::new();
        labelled.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into());
        for (label, value) in [(labels::RELEASE, release), (labels::RELEASE_NAMESPACE, pipeline)] {
            if value.len() <= 63 {
                labelled.insert(label.into(), value.into());
            }
        }
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": name,
                "labels": labelled,
                "annotations": {PIPELINE_ANNOTATION: pipeline, RELEASE_ANNOTATION: release, UID_ANNOTATION: uid},
            },
            "type": TYPE,
            "data": {
                KEY: ByteString(key.as_bytes().to_vec()),
                UID: ByteString(uid.as_bytes().to_vec()),
                MANIFEST: ByteString(packed),
            },
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        // Not known to hold anything while the write is under way (it may fail half way).
        self.held(&name, None);
        self.api().patch(&name, &params, &Patch::Apply(&secret)).await.map_err(|source| {
            KeptError::Write { namespace: self.namespace.clone(), name: name.clone(), source }
        })?;
        self.held(&name, Some((uid, key)));
        Ok(())
    }

    /// Forgets what `owner` kept (it is gone); whether there was something. What a Release of the
    /// same name kept since is left.
    pub async fn remove(&self, owner: &Owner<'_>) -> Result<bool, KeptError> {
        let name = Self::name(owner.pipeline, owner.release);
        let write_error =
            |source| KeptError::Write { namespace: self.namespace.clone(), name: name.clone(), source };
        let Some(secret) = self.api().get_opt(&name).await.map_err(write_error)? else { return Ok(false) };
        let uid = secret.data.as_ref().and_then(|d| d.get(UID)).map(|u| u.0.as_slice());
        if uid != Some(owner.uid.as_bytes()) {
            return Ok(false);
        }
        // Only the Secret as read: one written since (a Release made again under the name keeps
        // its own in the same object, by a server-side apply) is not this one's to delete.
        let meta = &secret.metadata;
        let only = DeleteParams {
            preconditions: Some(Preconditions {
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
            }),
            ..Default::default()
        };
        match self.api().delete(&name, &only).await {
            Ok(_) => {
                self.held(&name, None);
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(false),
            Err(source) => Err(write_error(source)),
        }
    }

    /// Removes every kept output whose Release is gone (`live` says whether pipeline, Release name
    /// and uid still name one): those deleted while no operator ran, or whose finalizer someone
    /// removed. One list of this namespace's kept outputs.
    pub async fn sweep(&self, live: &impl Fn(&str, &str, &str) -> bool) -> Result<usize, KeptError> {
        let kept = ListParams::default().fields(&format!("type={TYPE}"));
        let list = self
            .api()
            .list_metadata(&kept)
            .await
            .map_err(|source| KeptError::List { namespace: self.namespace.clone(), source })?;
        let mut removed = 0;
        for secret in list.items {
            let annotations = secret.metadata.annotations.clone().unwrap_or_default();
            let field = |a| annotations.get(a).map(String::as_str);
            let (Some(pipeline), Some(release), Some(uid)) =
                (field(PIPELINE_ANNOTATION), field(RELEASE_ANNOTATION), field(UID_ANNOTATION))
            else {
                continue;
            };
            if !live(pipeline, release, uid) && self.remove(&Owner { pipeline, release, uid }).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn pack(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(text.as_bytes());
    encoder.finish().unwrap_or_default()
}

/// The text `pack` made, or `None` when these bytes are not that, or unpack to more than `limit`
/// (what Helm may render: no kept output is a way to exhaust memory).
fn unpack(bytes: &[u8], limit: usize) -> Option<String> {
    let most = u64::try_from(limit).unwrap_or(u64::MAX);
    let mut text = String::new();
    let mut decoder = flate2::read::GzDecoder::new(bytes).take(most.saturating_add(1));
    decoder.read_to_string(&mut text).ok()?;
    (text.len() <= limit).then_some(text)
}

/// How long the sweep waits after a Release is gone, so that a burst of deletions (a pipeline
/// namespace deleted) costs one list.
const SWEEP_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Sweeps what was kept for Releases that are gone: once at the start (deleted while no operator
/// ran), then after Releases go (`released`), until `stop`. `live` says whether a pipeline, Release
/// name and uid still name one (from the cache).
pub async fn sweep_while(
    kept: KeptRenders,
    released: Arc<tokio::sync::Notify>,
    live: impl Fn(&str, &str, &str) -> bool,
    stop: impl std::future::Future<Output = ()>,
) {
    let sweeps = async {
        loop {
            match kept.sweep(&live).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "chart outputs kept for deleted Releases removed"),
                Err(e) => tracing::warn!(error = %e, "chart outputs kept for deleted Releases not swept"),
            }
            released.notified().await;
            tokio::time::sleep(SWEEP_SETTLE).await;
        }
    };
    tokio::select! {
        () = sweeps => {}
        () = stop => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_packed_unpacks_and_nothing_else_does() {
        let manifest =
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: x8Kq\n".repeat(50);
        let packed = pack(&manifest);
        assert!(packed.len() < manifest.len() / 5, "{} of {}", packed.len(), manifest.len());
        assert_eq!(unpack(&packed, manifest.len()).as_deref(), Some(manifest.as_str()));
        assert_eq!(unpack(&packed, manifest.len() - 1), None, "more than the limit is refused");
        assert_eq!(unpack(b"not gzip", 1 << 20), None);
        assert_eq!(unpack(&packed[..packed.len() / 2], 1 << 20), None);
    }

    #[test]
    fn names_are_valid_and_distinct_per_pipeline_and_release() {
        let a = KeptRenders::name("team-a", "payments-prod");
        assert!(a.len() <= 63 && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_ne!(a, KeptRenders::name("team-b", "payments-prod"));
        assert_ne!(a, KeptRenders::name("team-a", "payments-test"));
        // The separator cannot be forged by moving it between the two names.
        assert_ne!(KeptRenders::name("a-b", "c"), KeptRenders::name("a", "b-c"));
        let long = "x".repeat(253);
        assert_eq!(KeptRenders::name(&long, &long).len(), a.len());
    }
}
