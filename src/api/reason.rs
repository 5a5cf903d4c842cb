//! The vocabulary of status and Events: every condition type and every reason the operator and the
//! CLI write, in one place. On the wire they are the CamelCase strings the README documents; in the
//! code they are typed, so a misspelt reason is a compile error and not a condition no reader matches.

use std::fmt;

/// Declares a string-valued enum: each variant is written as its own name.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $ty:ident { $( $(#[$doc:meta])* $name:ident, )* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $ty { $( $(#[$doc])* $name, )* }

        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$name),*];

            /// The value as written in status and Events.
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$name => stringify!($name)),* }
            }

            /// The value a status or Event carries, if it is one of ours.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $(stringify!($name) => Some($ty::$name),)* _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.as_str().to_string()
            }
        }

        // What is read back from the API server is a String: comparing it with a typed value keeps
        // the readers free of literals too.
        impl PartialEq<$ty> for String {
            fn eq(&self, other: &$ty) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<$ty> for str {
            fn eq(&self, other: &$ty) -> bool {
                self == other.as_str()
            }
        }
    };
}

vocabulary! {
    /// A condition's `type`.
    ConditionType {
        /// Release: runs its version healthily. Environment: its namespace is set up. AppVersion:
        /// published, can be deployed.
        Ready,
        /// Release: a rollout is under way.
        Progressing,
        /// Release: failed or its rollout did not become healthy in time.
        Degraded,
        /// Release: a newer version waits (approval, freeze, soak, dependencies).
        Held,
        /// Release: changes shipped on an older line are missing from this line's newest version.
        ForwardPortMissing,
    }
}

vocabulary! {
    /// A condition's `reason`, or an Event's.
    Reason {
        // Rollouts (Release conditions and Events).
        RolloutStarted,
        Approved,
        RolloutInProgress,
        RolloutComplete,
        ProgressDeadlineExceeded,
        Verifying,
        VerificationFailed,
        AsExpected,
        RollingBack,
        DriftRepaired,
        Pruned,
        // A Release being deleted whose objects cannot be removed, or were left behind.
        CleanupBlocked,
        CleanupAbandoned,
        // What a Release holds back, and why it waits.
        NothingHeld,
        AwaitingApproval,
        Rejected,
        Frozen,
        OutsideAllowWindow,
        Soaking,
        WaitingForDependencies,
        UpstreamNotFound,
        UpstreamNotHealthy,
        EnvironmentNotFound,
        EnvironmentNotReady,
        DuplicateRelease,
        // Forward ports.
        NothingMissing,
        ChangesMissing,
        // Version choice a Release's spec gets wrong.
        NoVersion,
        ConflictingVersionSources,
        InvalidVersion,
        InvalidTrackRange,
        InvalidSoak,
        InvalidVersionLine,
        InvalidFreezeWindow,
        InvalidAllowWindow,
        InvalidApprovalPolicy,
        InvalidDependency,
        DependencyCycle,
        OutsideVersionLine,
        NoMatchingVersion,
        VersionFailed,
        VersionVetoed,
        RollbackTargetNotInHistory,
        NamespaceOwned,
        // AppVersions.
        AppVersionNotFound,
        AppVersionNotPublished,
        AppVersionModified,
        AmbiguousAppVersion,
        Published,
        DuplicateVersion,
        SpecModifiedAfterPublish,
        // Rendering.
        NothingToDeploy,
        InvalidManifest,
        ClusterScopedManifest,
        ForbiddenKind,
        ForeignNamespace,
        UnknownKind,
        UnknownVariable,
        DuplicateObject,
        NameTooLong,
        TooManyObjects,
        // Helm charts (AppVersion and Release conditions; ChartHooksSkipped is an Event).
        ChartNotFound,
        ChartRepositoryUnreachable,
        ChartCredentialsRejected,
        ChartDigestChanged,
        ChartRenderFailed,
        ChartValuesInvalid,
        ChartOutputTooLarge,
        ChartHasCrds,
        ChartHooksSkipped,
        HelmUnavailable,
        /// A chart repository or another cluster's API server is where the pipeline may not connect.
        EgressDenied,
        // Applying.
        ApplyRejected,
        Forbidden,
        ServiceAccountRequired,
        OwnershipConflict,
        // Environments.
        InvalidName,
        NamespaceCreated,
        NamespaceTerminating,
        NamespaceOwnedByOther,
        NamespaceNotManaged,
        /// Environment and Release: no PipelinePolicy grants the pipeline the namespace.
        NamespaceNotGranted,
        /// Environment and Release: no PipelinePolicy grants the pipeline the other cluster.
        ClusterNotGranted,
        /// Release: the namespace written to is not (or no longer) its Environment's there.
        NamespaceNotClaimed,
        /// Release: the namespace enforces a weaker Pod Security level than the operator requires.
        PodSecurityTooWeak,
        // Other clusters (Environment and Release conditions).
        ClusterUnreachable,
        ClusterConfigInvalid,
        AgentConnected,
        AgentNotConnected,
        // Notifications (their Ready condition).
        Delivered,
        DeliveryFailing,
        DeliveryFailed,
        // The CLI's freeze and veto verbs (Events).
        FreezeOverridden,
        Unfrozen,
        Vetoed,
        VetoLifted,
        // A reconcile that failed at one of its steps (Warning Events).
        ApplyFailed,
        PruneFailed,
        ReadFailed,
        StatusWriteFailed,
        DiscoveryFailed,
        NamespaceFailed,
        FinalizerFailed,
        InvalidObject,
    }
}

impl Reason {
    /// An Environment's cluster cannot be used (its Ready condition; its Releases say the same).
    pub fn is_cluster_trouble(self) -> bool {
        matches!(
            self,
            Reason::ClusterUnreachable
                | Reason::ClusterConfigInvalid
                | Reason::AgentNotConnected
                | Reason::ClusterNotGranted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_written_as_its_name_and_parsed_back() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
            assert_eq!(format!("{r:?}"), r.as_str());
        }
        for t in ConditionType::ALL {
            assert_eq!(ConditionType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(Reason::parse("SomethingElse"), None);
    }

    #[test]
    fn the_readme_explains_every_reason() {
        let readme = include_str!("../../README.md");
        let missing: Vec<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).filter(|r| !readme.contains(&format!("`{r}`"))).collect();
        assert!(missing.is_empty(), "README.md does not explain: {missing:?}");
    }
}
