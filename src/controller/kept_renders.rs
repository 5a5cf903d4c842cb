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

use std::io::{Read, Write};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api::{FIELD_MANAGER, labels};

/// The most compressed bytes kept (a Secret holds at most 1 MiB in all).
pub const KEPT_LIMIT: usize = 900 * 1024;
/// Data keys of a kept output.
const KEY: &str = "key";
const MANIFEST: &str = "manifest.gz";

/// Where rendered outputs are kept: a namespace of the operator's own.
#[derive(Clone)]
pub struct KeptRenders {
    client: Client,
    namespace: String,
}

/// Why a kept output could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeptError {
    #[error("the output kept in Secret {namespace}/{name} cannot be read: {source}")]
    Read { namespace: String, name: String, source: kube::Error },
    #[error("the output could not be kept in Secret {namespace}/{name}: {source}")]
    Write { namespace: String, name: String, source: kube::Error },
    #[error("the output is {size} bytes compressed, more than the {KEPT_LIMIT} a Secret can keep")]
    TooLarge { size: usize },
}

impl KeptRenders {
    pub fn new(client: Client, namespace: String) -> Self {
        Self { client, namespace }
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

    /// Helm's output kept for `key`, if it was kept for that key (`None`: none kept, or another
    /// rollout's).
    pub async fn load(&self, pipeline: &str, release: &str, key: &str) -> Result<Option<String>, KeptError> {
        let name = Self::name(pipeline, release);
        let secret = self.api().get_opt(&name).await.map_err(|source| KeptError::Read {
            namespace: self.namespace.clone(),
            name: name.clone(),
            source,
        })?;
        let Some(data) = secret.and_then(|s| s.data) else { return Ok(None) };
        if data.get(KEY).map(|k| k.0.as_slice()) != Some(key.as_bytes()) {
            return Ok(None);
        }
        // Unreadable content is as good as none: rendered anew and kept again.
        Ok(data.get(MANIFEST).and_then(|m| unpack(&m.0)))
    }

    /// Keeps `manifest` (Helm's output) for `key`, replacing what Release `release` had kept.
    pub async fn save(
        &self,
        pipeline: &str,
        release: &str,
        key: &str,
        manifest: &str,
    ) -> Result<(), KeptError> {
        let packed = pack(manifest);
        if packed.len() > KEPT_LIMIT {
            return Err(KeptError::TooLarge { size: packed.len() });
        }
        let name = Self::name(pipeline, release);
        // Whose it is, for people (a name too long for a label value is refused at rendering
        // anyway; it must not keep the output from being kept first).
        let mut labelled = serde_json::Map::new();
        labelled.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into());
        for (label, value) in [(labels::RELEASE, release), (labels::RELEASE_NAMESPACE, pipeline)] {
            if value.len() <= 63 {
                labelled.insert(label.into(), value.into());
            }
        }
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": labelled},
            "type": "tuskfish.dev/rendered",
            "data": {
                KEY: ByteString(key.as_bytes().to_vec()),
                MANIFEST: ByteString(packed),
            },
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.api()
            .patch(&name, &params, &Patch::Apply(&secret))
            .await
            .map(|_| ())
            .map_err(|source| KeptError::Write { namespace: self.namespace.clone(), name, source })
    }

    /// Forgets what Release `release` kept (it is gone).
    pub async fn remove(&self, pipeline: &str, release: &str) -> Result<(), KeptError> {
        let name = Self::name(pipeline, release);
        match self.api().delete(&name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(KeptError::Write { namespace: self.namespace.clone(), name, source }),
        }
    }
}

fn pack(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(text.as_bytes());
    encoder.finish().unwrap_or_default()
}

/// The text `pack` made, or `None` when these bytes are not that (or unpack to more than Helm may
/// render: a forged Secret is no way to exhaust memory).
fn unpack(bytes: &[u8]) -> Option<String> {
    const MOST: u64 = 64 * 1024 * 1024;
    let mut text = String::new();
    let mut decoder = flate2::read::GzDecoder::new(bytes).take(MOST + 1);
    decoder.read_to_string(&mut text).ok()?;
    (text.len() as u64 <= MOST).then_some(text)
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
        assert_eq!(unpack(&packed).as_deref(), Some(manifest.as_str()));
        assert_eq!(unpack(b"not gzip"), None);
        assert_eq!(unpack(&packed[..packed.len() / 2]), None);
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
