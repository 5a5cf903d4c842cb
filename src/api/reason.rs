//! The vocabulary of status and Events: every condition type and every reason the operator and the
//! CLI write, in one place. On the wire they are the CamelCase strings the book documents; in the
//! code they are typed, so a misspelt reason is a compile error and not a condition no reader matches.

use std::fmt;

/// Declares a string-valued enum: each variant is written as its own name.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $ty:ident { $( $(#[doc = $doc:literal])* $name:ident, )* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $ty { $( $(#[doc = $doc])* $name, )* }

        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$name),*];

            /// The value as written in status and Events.
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$name => stringify!($name)),* }
            }

            /// What the value means and what to do about it: its doc comment, which the
            /// generated reference (`tuskfish reference`) prints.
            pub fn doc(self) -> String {
                let lines: &[&str] = match self { $($ty::$name => &[$($doc),*]),* };
                lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
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
        /// Release (Event): a rollout began; only where a Notification listens for it
        RolloutStarted,
        /// Release (Event): a rollout the approval gate let through, naming who approved
        Approved,
        /// Release: objects applied; waiting for them to become ready (message says what is
        /// missing)
        RolloutInProgress,
        /// Release: the desired version runs and is healthy
        RolloutComplete,
        /// Release: not healthy within `progressDeadlineSeconds` (phase `Degraded`); look at the
        /// pods, fix, deploy another version
        ProgressDeadlineExceeded,
        /// Release: the workloads are healthy and the verification checks (`spec.verify`) run;
        /// `status.verification` says which is still running
        Verifying,
        /// Release: a verification check failed (phase `Degraded`, the rollout `Failed`, rolled
        /// back where automatic rollback is on); the message and `status.verification` quote what
        /// the check saw
        VerificationFailed,
        /// Release: `Degraded` is False: nothing wrong
        AsExpected,
        /// Release (Event): a failed or vetoed version is being rolled back; the message names both
        /// versions
        RollingBack,
        /// Release (Event): someone edited or deleted a managed object; it was applied again
        DriftRepaired,
        /// Release (Event): objects no longer rendered were deleted (named)
        Pruned,
        // A Release being deleted whose objects cannot be removed, or were left behind.
        /// Release: the Release is being deleted and its objects cannot be removed: the cluster
        /// they are in does not answer (it finishes once it does), is no longer granted, or its
        /// kubeconfig is gone; the message names the cluster and the way out for a cluster gone for
        /// good: `kubectl annotate release NAME tuskfish.dev/abandon-objects=CLUSTER`
        CleanupBlocked,
        /// Release: (Warning Event) the Release was deleted with that annotation: its objects,
        /// listed, stay in that cluster
        CleanupAbandoned,
        // What a Release holds back, and why it waits.
        /// Release: `Held` is False: no newer version waits
        NothingHeld,
        /// Release: a gate holds the new version (also shown by the `Held` condition while an older
        /// version keeps running); for approvals the message says how many there are, from whom,
        /// and who is still needed
        AwaitingApproval,
        /// Release: an approver rejected this version here (`tuskfish reject`); a newer version
        /// needs approvals of its own
        Rejected,
        /// Release: a gate holds the new version (also shown by the `Held` condition while an older
        /// version keeps running); for approvals the message says how many there are, from whom,
        /// and who is still needed
        Frozen,
        /// Release: the Environment has `allowWindows` and none is open: the new version rolls out
        /// by itself when the next opens (the message says when), or now with `tuskfish unfreeze
        /// ENV --override APP --reason R`
        OutsideAllowWindow,
        /// Release: promotion waits for the soak time / for a Release of the app upstream / for it
        /// to be Healthy; `soak` must look like `30m`
        Soaking,
        /// Release: a gate holds the new version (also shown by the `Held` condition while an older
        /// version keeps running); for approvals the message says how many there are, from whom,
        /// and who is still needed
        WaitingForDependencies,
        /// Release: promotion waits for the soak time / for a Release of the app upstream / for it
        /// to be Healthy; `soak` must look like `30m`
        UpstreamNotFound,
        /// Release: promotion waits for the soak time / for a Release of the app upstream / for it
        /// to be Healthy; `soak` must look like `30m`
        UpstreamNotHealthy,
        /// Release: create the Environment
        EnvironmentNotFound,
        /// Release: see its conditions
        EnvironmentNotReady,
        /// Release: another Release deploys the same app to the same Environment; every one of them
        /// waits (and a Release promoting from them holds) until all but one are deleted; the
        /// message names them all. The webhook refuses the second where it runs
        DuplicateRelease,
        // Forward ports.
        /// Release: `ForwardPortMissing` is False: no change shipped on an older line is missing
        /// here
        NothingMissing,
        /// Release: `ForwardPortMissing` is True: the message lists the change ids missing from
        /// this line and where they shipped; forward-port them
        ChangesMissing,
        // Version choice a Release's spec gets wrong.
        /// Release: set exactly one of `version`, `track`, `promoteFrom` / the version is not
        /// semver
        NoVersion,
        /// Release: set exactly one of `version`, `track`, `promoteFrom` / the version is not
        /// semver
        ConflictingVersionSources,
        /// Release: set exactly one of `version`, `track`, `promoteFrom` / the version is not
        /// semver; AppVersion: fix the spec, or publish under a new version (`InvalidVersion` also
        /// for a `spec.helm.version` that is not exact)
        InvalidVersion,
        /// Release: `track` is not a semver range
        InvalidTrackRange,
        /// Release: promotion waits for the soak time / for a Release of the app upstream / for it
        /// to be Healthy; `soak` must look like `30m`
        InvalidSoak,
        /// Release: the Environment's `versionLine` is not a range
        InvalidVersionLine,
        /// Release: fix the Environment's windows
        InvalidFreezeWindow,
        /// Release: an allow window cannot be read (a bad time zone, recurrence rule or time); the
        /// message says which and why
        InvalidAllowWindow,
        /// Release: the Environment's `approvalPolicy.expireAfter` is not a duration
        InvalidApprovalPolicy,
        /// Release: fix the range
        InvalidDependency,
        /// Release: break the `dependsOn` cycle named in the message
        DependencyCycle,
        /// Release: the version is outside it
        OutsideVersionLine,
        /// Release: no published version matches it (within the line)
        NoMatchingVersion,
        /// Release: the chosen version failed here before
        VersionFailed,
        /// Release: the version was vetoed (the message says by whom and why); it is skipped, held,
        /// or rolled back from (see Veto above); deploy another version or lift the veto
        VersionVetoed,
        /// Release: `rollback.to` names a version that never ran healthily here
        RollbackTargetNotInHistory,
        /// Environment: ready
        NamespaceOwned,
        // AppVersions.
        /// Release: no AppVersion of that app and version in the namespace
        AppVersionNotFound,
        /// Release: not yet published (transient)
        AppVersionNotPublished,
        /// Release: the AppVersion was edited after publishing; restore it or publish a new version
        AppVersionModified,
        /// Release: several AppVersions claim the same app+version; delete the extra one
        AmbiguousAppVersion,
        /// AppVersion: deployable
        Published,
        /// AppVersion: fix the spec, or publish under a new version (`InvalidVersion` also for a
        /// `spec.helm.version` that is not exact)
        DuplicateVersion,
        /// AppVersion: fix the spec, or publish under a new version (`InvalidVersion` also for a
        /// `spec.helm.version` that is not exact)
        SpecModifiedAfterPublish,
        // Products.
        /// ProductVersion: an app is named twice; name each app once
        DuplicateApp,
        /// ProductVersion: an app's `after` names an app that is not in the product version
        UnknownApp,
        /// ProductRelease: the product version it asks for does not exist (or is not published:
        /// `AppVersionNotPublished` says which app holds it)
        ProductVersionNotFound,
        /// ProductRelease: an app of the product already runs in the Environment by a Release of its
        /// own (named); delete that Release, or leave the app out of the product
        AppRunByRelease,
        /// Release: its app runs in this Environment as part of a product (the ProductRelease and its
        /// Release are named); delete this Release
        RunByProduct,
        /// Release: run by a ProductRelease, which has not admitted this version (yet): change the
        /// product's version, not the Release's
        ProductNotAdmitted,
        /// Release: names a ProductRelease as its owner that does not exist (or is another one now)
        ProductNotFound,
        /// ProductRelease: an app of the product version failed here; every app goes back to the
        /// previous product version (the message names the app and why)
        ProductRolloutFailed,
        // Rendering.
        /// Release: the AppVersion (or Environment variables) cannot be rendered; the message names
        /// the manifest; AppVersion: fix the spec, or publish under a new version (`InvalidVersion`
        /// also for a `spec.helm.version` that is not exact)
        NothingToDeploy,
        /// Release: the AppVersion (or Environment variables) cannot be rendered; the message names
        /// the manifest
        InvalidManifest,
        /// Release: the AppVersion (or Environment variables) cannot be rendered; the message names
        /// the manifest
        ClusterScopedManifest,
        /// Release: the AppVersion (or Environment variables) cannot be rendered; the message names
        /// the manifest
        ForbiddenKind,
        /// Release: the AppVersion (or Environment variables) cannot be rendered; the message names
        /// the manifest
        ForeignNamespace,
        /// Release: a manifest's kind is not served (CRD not installed?); retried every 15 s
        UnknownKind,
        /// AppVersion, Release: Helm values, a manifest or a check's Job template nest deeper than
        /// 90 levels (the operator reads no deeper, so one such object cannot stall every
        /// pipeline's watch); flatten them
        NestedTooDeep,
        /// Release: the AppVersion (or Environment variables) cannot be rendered; the message names
        /// the manifest
        UnknownVariable,
        /// Release: the AppVersion (or Environment variables) cannot be rendered; the message names
        /// the manifest
        DuplicateObject,
        /// Release: the AppVersion (or Environment variables) cannot be rendered; the message names
        /// the manifest
        NameTooLong,
        /// Release: the AppVersion renders more objects than a Release can record (inventory over
        /// 32 KiB, ≈ 200 objects); split the app
        TooManyObjects,
        // Helm charts (AppVersion and Release conditions; ChartHooksSkipped is an Event).
        /// Release, AppVersion: the chart or that version is not in the repository (or the
        /// repository URL is wrong); the message quotes Helm
        ChartNotFound,
        /// Release, AppVersion: the repository did not answer (down, DNS, timeout, TLS to a
        /// plain-HTTP registry: set `plainHttp`); retried by itself
        ChartRepositoryUnreachable,
        /// Release, AppVersion: the repository refused the credentials, or `secretRef`'s Secret
        /// (keys `username`, `password`) is missing; retried, so fixing the Secret is enough
        ChartCredentialsRejected,
        /// Release: the chart's content differs from the digest recorded at publish (re-pushed
        /// under the same version): restore it, or publish a new version
        ChartDigestChanged,
        /// Release: `helm template` failed (Helm's message)
        ChartRenderFailed,
        /// Release: the values do not fit the chart's `values.schema.json`
        ChartValuesInvalid,
        /// Release: the chart rendered more than `--helm-max-output`
        ChartOutputTooLarge,
        /// Release: it brings CustomResourceDefinitions (install them separately)
        ChartHasCrds,
        /// Release (Event): a chart's hooks, named, were left out of a new rollout; use
        /// `spec.verify` for checks
        ChartHooksSkipped,
        /// Release, AppVersion: the operator has no Helm (`--helm`, or its work directory cannot be
        /// written); the message says which
        HelmUnavailable,
        /// A chart repository or another cluster's API server is where the pipeline may not connect.
        /// Release, AppVersion: the chart repository resolves to an address the pipeline may not
        /// reach (loopback, link-local, the API server's, or outside its policy's `egress.allow`);
        /// HTTP checks, notifications and kubeconfig servers say the same in their own messages
        EgressDenied,
        // Applying.
        /// Release: the API server refused an object (message has its words)
        ApplyRejected,
        /// Release: RBAC denies the operator, or the Environment's ServiceAccount, that verb on
        /// that object (the message names both)
        Forbidden,
        /// Release: the operator runs with `--require-service-account`, or a PipelinePolicy of the
        /// pipeline sets `requireServiceAccount`, and the Environment has no `serviceAccountName`
        ServiceAccountRequired,
        /// Release: an object with that name exists and belongs to another Release or to nobody in
        /// tuskfish
        OwnershipConflict,
        // Environments.
        /// Environment: the name is longer than 63 characters, so it cannot label the namespace and
        /// objects; recreate it shorter
        InvalidName,
        /// Environment (Event): the operator created the Environment's namespace
        NamespaceCreated,
        /// Environment: see above; a terminating namespace is created again once gone
        NamespaceTerminating,
        /// Environment: see above; a terminating namespace is created again once gone
        NamespaceOwnedByOther,
        /// Environment: see above; a terminating namespace is created again once gone
        NamespaceNotManaged,
        /// Environment and Release: no PipelinePolicy grants the pipeline the namespace.
        /// Environment, Release: no PipelinePolicy grants the pipeline that namespace (without one:
        /// only `<pipeline>-*`); the namespace is neither created nor adopted. Pick a granted
        /// namespace, or a cluster admin grants it (see
        /// [PipelinePolicy](../how-to/pipeline-policy.md))
        NamespaceNotGranted,
        /// Environment and Release: no PipelinePolicy grants the pipeline the other cluster.
        /// Environment, Release: the Environment names a kubeconfig Secret or agent no
        /// PipelinePolicy grants its pipeline; nothing connects there until one does
        ClusterNotGranted,
        /// Release: the namespace written to is not (or no longer) its Environment's there.
        /// Release: the namespace it would write to is not its Environment's in that cluster (any
        /// more): see the Environment's Ready condition; nothing is written until the Environment
        /// owns it
        NamespaceNotClaimed,
        /// Release: the namespace enforces a weaker Pod Security level than the operator requires.
        /// Release: the namespace (one handed over by annotation, or created before levels were
        /// set) enforces no Pod Security level, or a weaker one than `--pod-security`: a cluster
        /// admin labels it (`kubectl label namespace NS
        /// pod-security.kubernetes.io/enforce=baseline`); nothing is written until then
        PodSecurityTooWeak,
        // Other clusters (Environment and Release conditions).
        /// Environment, Release: the Environment's other cluster does not answer (the message has
        /// the error: connection refused, `Unauthorized` for a rejected token…); rollouts there
        /// wait and resume by themselves
        ClusterUnreachable,
        /// Environment, Release: `cluster.kubeConfigSecretRef` names a Secret or key that does not
        /// exist, or a kubeconfig that cannot be used or runs a command / reads a file; fix the
        /// Secret (it is followed)
        ClusterConfigInvalid,
        /// Environment: an agent serves the Environment and reports
        AgentConnected,
        /// Environment: has not reported within its lease (the message says when it last did):
        /// start or fix `tuskfish agent --name NAME` in that cluster; its Releases wait
        AgentNotConnected,
        // Notifications (their Ready condition).
        /// Notification: the last notice was accepted
        Delivered,
        /// Notification: a notice is being retried; the message has the receiver's answer
        DeliveryFailing,
        /// Notification: a notice was given up on after an hour of retries (also a Warning Event);
        /// check the receiver and its Secret
        DeliveryFailed,
        // The CLI's freeze and veto verbs (Events).
        /// Environment / Release (Event): `tuskfish freeze --override` let a rollout through a
        /// freeze, with its reason
        FreezeOverridden,
        /// Environment / Release (Event): `tuskfish unfreeze` lifted a freeze
        Unfrozen,
        /// AppVersion (Event): `tuskfish veto` marked the version bad in the pipeline namespace
        Vetoed,
        /// AppVersion (Event): `tuskfish veto --lift` lifted the veto
        VetoLifted,
        // A reconcile that failed at one of its steps (Warning Events).
        /// reconcile step: applying failed for a reason that may pass (retried with backoff;
        /// counted in `tuskfish_reconciles_total`)
        ApplyFailed,
        /// reconcile step: deleting what is no longer rendered failed (retried with backoff)
        PruneFailed,
        /// reconcile step: reading from the API server failed (retried with backoff)
        ReadFailed,
        /// reconcile step: writing status failed (retried with backoff)
        StatusWriteFailed,
        /// reconcile step: writing an audit record (a Ledger) failed; the status waits for it
        /// (retried with backoff)
        RecordFailed,
        /// reconcile step: API discovery failed (retried with backoff)
        DiscoveryFailed,
        /// reconcile step: setting up an Environment's namespace failed (retried with backoff)
        NamespaceFailed,
        /// reconcile step: adding or removing a finalizer failed (retried with backoff)
        FinalizerFailed,
        /// reconcile step: an object the operator read could not be used (logged)
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
    fn every_value_says_what_it_means() {
        let undocumented: Vec<&str> = Reason::ALL
            .iter()
            .filter(|r| r.doc().is_empty())
            .map(|r| r.as_str())
            .chain(ConditionType::ALL.iter().filter(|c| c.doc().is_empty()).map(|c| c.as_str()))
            .collect();
        assert!(undocumented.is_empty(), "no doc comment: {undocumented:?}");
        assert_eq!(
            Reason::Forbidden.doc(),
            "Release: RBAC denies the operator, or the Environment's ServiceAccount, that verb on that object (the message names both)"
        );
    }
}
