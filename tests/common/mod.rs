//! Shared harness for the integration tests: one operator and one node simulator per test binary,
//! against the real control plane named by `TUSKFISH_TEST_KUBECONFIG` (`make test` starts one).
//! Every test works in its own namespaces, so tests run in parallel.

#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use kube::runtime::wait::await_condition;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tuskfish::api::{AppVersion, Environment, Phase, Release, ReleaseStatus, find_condition};
use tuskfish::client::Target;
use tuskfish::controller::{ReconcileLog, Settings};
use tuskfish::telemetry::{RequestCounter, RequestCounts};

pub mod charts;
pub mod control_plane;
pub mod fault;
pub mod receiver;

/// How long a test waits for the operator before failing. Generous: a loaded CI machine must not
/// turn a slow pass into a failure; a broken operator fails anyway.
pub const WAIT: Duration = Duration::from_secs(60);

struct Harness {
    target: Target,
    counts: Arc<RequestCounts>,
    /// What the operator has reconciled (see [`TestNs::nudge`]).
    reconciled: Arc<ReconcileLog>,
    metrics: tuskfish::telemetry::SharedMetrics,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();
/// The operator's status settle window, when a test binary needs another than the default.
static STATUS_SETTLE: OnceLock<Duration> = OnceLock::new();

/// Runs this binary's operator with this status settle window (call before anything else).
/// (The operator, once started, keeps the window it started with: a call that comes too late to
/// change it fails.)
pub fn use_status_settle(window: Duration) {
    assert_eq!(*STATUS_SETTLE.get_or_init(|| window), window, "the operator runs with another window");
}

/// The test cluster's (admin) kubeconfig path.
pub fn kubeconfig() -> String {
    let Ok(path) = std::env::var("TUSKFISH_TEST_KUBECONFIG") else {
        panic!(
            "TUSKFISH_TEST_KUBECONFIG is not set: run the integration tests with `make test`, which starts a \
             local control plane (or set it to a test cluster's kubeconfig)"
        );
    };
    path
}

fn target() -> Target {
    Target::kubeconfig(kubeconfig())
}

/// The leader-election flags of operator processes a test starts: a Lease of 4 s, renewed every
/// 0.5 s and given up after 2 s without renewal (hand-overs in seconds, within `leader::MARGIN`).
pub const SHORT_LEASE: [&str; 6] =
    ["--lease-duration", "4s", "--renew-deadline", "2s", "--retry-period", "500ms"];

/// A loopback port nobody listens on (for operator processes a test starts), and none this test
/// process handed out before: the system may give a port just let go again, and two processes
/// told the same port collide (one fails with "address already in use").
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Waits until something listens on loopback `port` (a process the test started is up).
pub async fn wait_listening(port: u16, what: &str) {
    within(what, async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// Starts (once per test binary) the operator on a runtime of its own, so that it outlives each
/// test's runtime. Pods are run by the bed's kwok nodes (`hack/kwok-up.sh`), not by the tests.
fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let target = target();
        let counter = RequestCounter::default();
        let counts = counter.counts();
        let reconciled = Arc::new(ReconcileLog::default());
        let mut settings = Settings { reconciled: Some(reconciled.clone()), ..Default::default() };
        settings.helm = helm_config();
        settings.status_settle = *STATUS_SETTLE.get_or_init(|| settings.status_settle);
        let metrics = settings.metrics.clone();
        let t = target.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let client = t.client(&counter).await.unwrap();
                settings.client_config = Some(t.config().await.unwrap());
                install_definitions(&client).await;
                ready_tx.send(()).unwrap();
                tuskfish::controller::run(client, settings, counter.counts(), std::future::pending()).await;
            });
        });
        ready_rx.recv_timeout(WAIT).expect("operator did not start");
        Harness { target, counts, reconciled, metrics }
    })
}

/// The test operator's metrics, as `/metrics` serves them.
pub fn operator_metrics() -> String {
    let h = harness();
    h.metrics.encode(&h.counts)
}

/// The value of one series of the test operator's metrics (`name{labels}`), if it has one.
pub fn metric(series: &str) -> Option<String> {
    let prefix = format!("{series} ");
    operator_metrics().lines().find_map(|l| l.strip_prefix(&prefix).map(String::from))
}

/// `tuskfish --kubeconfig (the test cluster) -n NS ARGS`: its standard output.
pub async fn tuskfish_output(ns: &str, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tuskfish"));
    cmd.args(["--kubeconfig", &kubeconfig(), "-n", ns]).args(args).env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Helm for the test operator, when `make test` built it (`TUSKFISH_HELM`); its chart cache is
/// this test process's own.
pub fn helm_config() -> Result<tuskfish::helm::HelmConfig, String> {
    let binary = std::env::var("TUSKFISH_HELM").map_err(|_| "TUSKFISH_HELM is not set".to_string())?;
    Ok(tuskfish::helm::HelmConfig {
        binary: binary.into(),
        work_dir: std::env::temp_dir().join(format!("tuskfish-helm-test-{}", std::process::id())),
        concurrency: 4,
        timeout: Duration::from_secs(60),
        max_output: 4 * 1024 * 1024,
    })
}

/// Group the tests' approvers are in (`approve` impersonates a user in it); bound to a ClusterRole
/// that may create and read Approvals, and nothing else.
pub const APPROVERS_GROUP: &str = "tuskfish:test-approvers";

static DEFINITIONS: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Installs the CRDs, the identity policies and the test approvers' RBAC (what `tuskfish
/// crd` and the chart install), once per test binary, and waits until the API server really
/// serves the kinds and enforces the policy.
pub async fn install_definitions(client: &Client) {
    DEFINITIONS
        .get_or_init(|| async {
            let yaml = tuskfish::crd_yaml(tuskfish::Definitions::All).unwrap();
            for doc in serde_saphyr::from_multiple::<Value>(&yaml).unwrap().into_iter().filter(|d| !d.is_null()) {
                apply_value_as(client, None, doc, "tuskfish-tests").await.unwrap();
            }
            let crds: Api<
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
            > = Api::all(client.clone());
            for crd in tuskfish::api::crds() {
                let name = crd.metadata.name.clone().unwrap();
                let established =
                    await_condition(crds.clone(), &name, kube::runtime::conditions::is_crd_established());
                within("CRD established", established).await.unwrap();
            }
            for doc in [
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "tuskfish-test-approver"},
                    "rules": [{"apiGroups": ["tuskfish.dev"], "resources": ["approvals"],
                               "verbs": ["create", "patch", "get", "list", "watch"]},
                              {"apiGroups": ["tuskfish.dev"], "resources": ["environments", "appversions", "releases", "productversions", "productreleases"],
                               "verbs": ["get", "list", "watch"]}]}),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": "tuskfish-test-approver"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "tuskfish-test-approver"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": APPROVERS_GROUP}]}),
                // The tests' pipelines (`t-…`, and the examples' `finance`) may reach what the tests
                // serve on loopback; a pipeline with another name gets the default (see
                // `TestNs::without_policy`).
                json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "PipelinePolicy",
                    "metadata": {"name": "tuskfish-tests"},
                    "spec": {"pipelines": ["t-*", "finance"], "namespaces": ["{pipeline}-*"],
                             "clusters": {"kubeConfigSecrets": ["*"], "agents": ["*"]},
                             "egress": {"allow": ["127.0.0.0/8", "::1/128"]}}}),
            ] {
                apply_value_as(client, None, doc, "tuskfish-tests").await.unwrap();
            }
            wait_served(client).await;
            wait_allowed(client, "rbac-probe", &[APPROVERS_GROUP], "patch", "approvals", "default").await;
        })
        .await;
}

/// Established is not served: right after a CRD is Established its endpoints can still answer
/// 404 for a moment, and a new ValidatingAdmissionPolicy takes a moment to be enforced. Waits
/// until a list of every kind succeeds and an Approval and a veto in someone else's name are refused.
async fn wait_served(client: &Client) {
    let probe_ns = "default";
    within("tuskfish kinds served and the identity policies enforced", async {
        loop {
            let served = lists::<AppVersion>(client, probe_ns).await
                && lists::<Environment>(client, probe_ns).await
                && lists::<Release>(client, probe_ns).await
                && lists::<tuskfish::api::Approval>(client, probe_ns).await
                && lists::<tuskfish::api::Notification>(client, probe_ns).await
                && lists::<tuskfish::api::ProductVersion>(client, probe_ns).await
                && lists::<tuskfish::api::ProductRelease>(client, probe_ns).await;
            if served && policy_enforced(client, probe_ns).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// Whether a list of kind `K` in `ns` succeeds (its endpoint is served).
async fn lists<K>(client: &Client, ns: &str) -> bool
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    Api::<K>::namespaced(client.clone(), ns).list(&Default::default()).await.is_ok()
}

/// Whether the API server refuses (in dry runs) an Approval, a veto and a request claim that name
/// someone other than their author.
async fn policy_enforced(client: &Client, ns: &str) -> bool {
    let probe: tuskfish::api::Approval = serde_json::from_value(json!({
        "apiVersion": "tuskfish.dev/v1alpha1", "kind": "Approval",
        "metadata": {"name": "tuskfish-policy-probe"},
        "spec": {"release": "probe", "version": "0.0.1", "approver": "not-the-admin"}}))
    .unwrap();
    let pp = PostParams { dry_run: true, ..Default::default() };
    let approval =
        match Api::<tuskfish::api::Approval>::namespaced(client.clone(), ns).create(&pp, &probe).await {
            Err(kube::Error::Api(e)) => e.message.contains("spec.approver must be the user"),
            _ => false,
        };
    let veto: AppVersion = serde_json::from_value(json!({
        "apiVersion": "tuskfish.dev/v1alpha1", "kind": "AppVersion",
        "metadata": {"name": "tuskfish-policy-probe",
                     "annotations": {"tuskfish.dev/veto": "probe", "tuskfish.dev/vetoed-by": "not-the-admin"}},
        "spec": {"app": "probe", "version": "0.0.1", "workload": {"image": "probe"}}}))
    .unwrap();
    let veto = match Api::<AppVersion>::namespaced(client.clone(), ns).create(&pp, &veto).await {
        Err(kube::Error::Api(e)) => e.message.contains("must name the user who sets or changes the veto"),
        _ => false,
    };
    let claim: Release = serde_json::from_value(json!({
        "apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": "tuskfish-policy-probe",
                     "annotations": {"tuskfish.dev/requested-by": "not-the-admin", "tuskfish.dev/requested-generation": "1"}},
        "spec": {"app": "probe", "environment": "probe", "version": "0.0.1"}}))
    .unwrap();
    let claim = match Api::<Release>::namespaced(client.clone(), ns).create(&pp, &claim).await {
        Err(kube::Error::Api(e)) => e.message.contains("must name the user who writes it"),
        _ => false,
    };
    approval && veto && claim
}

/// Waits until RBAC lets `user` (in `groups`) `verb` `resource` of tuskfish.dev in `ns`: a new
/// (Cluster)RoleBinding reaches the API server's authorizer a moment after it is stored.
pub async fn wait_allowed(admin: &Client, user: &str, groups: &[&str], verb: &str, resource: &str, ns: &str) {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    let review: SubjectAccessReview = serde_json::from_value(json!({"spec": {
        "user": user, "groups": groups,
        "resourceAttributes": {"group": "tuskfish.dev", "resource": resource, "verb": verb, "namespace": ns}}}))
    .unwrap();
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    within(&format!("RBAC to let {user} {verb} {resource}"), async {
        loop {
            let r = api.create(&PostParams::default(), &review).await.unwrap();
            if r.status.is_some_and(|s| s.allowed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// A client that acts as `user` in the tests' approvers group, by impersonation (the admin's
/// kubeconfig may impersonate anyone): requests are authenticated as that user, as
/// `kubectl --as USER --as-group GROUP` would send them.
pub async fn client_as(user: &str, groups: &[&str]) -> Client {
    let target = Target {
        impersonate: Some(user.to_string()),
        impersonate_groups: groups.iter().map(|g| g.to_string()).collect(),
        ..target()
    };
    Client::try_from(target.config().await.unwrap()).unwrap()
}

/// One test's world: a client and a unique pipeline namespace; environment namespaces get the same
/// prefix so `operator_writes` can count what the operator wrote for this test alone.
pub struct TestNs {
    pub client: Client,
    pub ns: String,
}

impl TestNs {
    pub async fn new(name: &str) -> Self {
        let h = harness();
        Self::create(name, &h.target).await
    }

    /// A pipeline namespace the tests' PipelinePolicy does not name (`p-…`): it gets what any
    /// pipeline no admin granted anything gets.
    pub async fn without_policy(name: &str) -> Self {
        Self::create_with("p", name, &harness().target).await
    }

    /// A namespace with no operator started in-process: for tests that run the operator as
    /// processes of their own (leader election, chaos).
    pub async fn without_operator(name: &str) -> Self {
        let t = Self::create(name, &target()).await;
        install_definitions(&t.client).await;
        t
    }

    async fn create(name: &str, target: &Target) -> Self {
        Self::create_with("t", name, target).await
    }

    async fn create_with(prefix: &str, name: &str, target: &Target) -> Self {
        let client = target.client(&RequestCounter::default()).await.unwrap();
        let suffix: String = format!("{:x}", rand_u32());
        let ns = format!("{prefix}-{name}-{suffix}");
        let api: Api<Namespace> = Api::all(client.clone());
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
        Self { client, ns }
    }

    /// The name for an environment namespace that belongs to this test.
    pub fn env_ns(&self, env: &str) -> String {
        format!("{}-{env}", self.ns)
    }

    /// Writes the operator sent to this test's namespaces so far.
    pub fn operator_writes(&self) -> u64 {
        harness().counts.writes_in_namespaces(&self.ns)
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn api_in<K>(&self, ns: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Server-side applies a YAML/JSON object (as a user with kubectl would), in the test namespace
    /// unless it names one.
    pub async fn apply(&self, obj: Value) -> DynamicObject {
        apply_value(&self.client, Some(&self.ns), obj).await.unwrap()
    }

    pub async fn environment(&self, name: &str, extra: Value) -> Environment {
        let mut spec = json!({"namespace": self.env_ns(name), "tier": "dev"});
        merge(&mut spec, extra);
        self.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Environment",
            "metadata": {"name": name}, "spec": spec}))
            .await;
        self.wait_env_ready(name).await
    }

    pub async fn wait_env_ready(&self, name: &str) -> Environment {
        self.wait_for::<Environment>(name, |e| {
            e.status.as_ref().is_some_and(|s| tuskfish::api::is_true(&s.conditions, "Ready"))
        })
        .await
    }

    pub async fn app_version(&self, app: &str, version: &str, spec_extra: Value) -> AppVersion {
        let name = format!("{app}-{version}");
        let mut spec = json!({"app": app, "version": version,
            "workload": {"image": format!("registry.example/{app}:{version}"), "ports": [{"name": "http", "containerPort": 8080}]}});
        merge(&mut spec, spec_extra);
        // `null` removes a default field (the API server refuses a null: nothing is nullable).
        if let Value::Object(m) = &mut spec {
            m.retain(|_, v| !v.is_null());
        }
        self.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "AppVersion",
            "metadata": {"name": name}, "spec": spec}))
            .await;
        self.wait_for::<AppVersion>(&name, |a| a.status.as_ref().is_some_and(|s| !s.conditions.is_empty()))
            .await
    }

    /// Applies a Release; `extra` is merged into the spec (a `null` removes a field, e.g.
    /// `{"version": null, "track": "~1.3"}`).
    pub async fn release(&self, name: &str, app: &str, env: &str, version: &str, extra: Value) {
        let mut spec = json!({"app": app, "environment": env, "version": version});
        merge(&mut spec, extra);
        if let Value::Object(m) = &mut spec {
            m.retain(|_, v| !v.is_null());
        }
        self.apply(json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Release",
            "metadata": {"name": name}, "spec": spec}))
            .await;
    }

    /// Approves `version` of `release` as the user `who` (impersonated, in the approvers group),
    /// with the reason `CAB-42`: the API server checks that `spec.approver` is the requester.
    pub async fn approve(&self, release: &str, version: &str, who: &str) {
        let as_who = client_as(who, &[APPROVERS_GROUP]).await;
        let approval = json!({"apiVersion": "tuskfish.dev/v1alpha1", "kind": "Approval",
            "metadata": {"name": format!("{release}-{version}")},
            "spec": {"release": release, "version": version, "approver": who, "reason": "CAB-42"}});
        apply_value(&as_who, Some(&self.ns), approval).await.unwrap();
    }

    /// A ServiceAccount `deployer` in `ns` that may manage `resources` (group, resource) there,
    /// and nothing else.
    /// The operator's leader Lease (`tuskfish`, in this namespace), once `holder` holds it
    /// (`None`: once nobody does).
    pub async fn wait_lease_holder(&self, holder: Option<&'static str>) -> Lease {
        self.wait_for::<Lease>("tuskfish", move |l| {
            l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).filter(|h| !h.is_empty()) == holder
        })
        .await
    }

    pub async fn deployer(&self, ns: &str, resources: &[(&str, &str)]) {
        self.apply(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer", "namespace": ns}}))
            .await;
        let verbs = json!(["get", "list", "watch", "create", "update", "patch", "delete"]);
        let rules: Vec<Value> = resources
            .iter()
            .map(|(g, r)| json!({"apiGroups": [g], "resources": [r], "verbs": verbs}))
            .collect();
        self.apply(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "deployer", "namespace": ns}, "rules": rules}))
            .await;
        self.apply(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "deployer", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns}]}))
            .await;
    }

    pub async fn set_version(&self, release: &str, version: &str) {
        let patch = json!({"spec": {"version": version}});
        self.api::<Release>().patch(release, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    /// Waits (by watching, not polling) until `cond` holds for the named object in the test namespace.
    pub async fn wait_for<K>(&self, name: &str, cond: impl Fn(&K) -> bool + Send + 'static) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned
            + Send
            + 'static,
    {
        self.wait_for_in(&self.ns.clone(), name, cond).await
    }

    pub async fn wait_for_in<K>(&self, ns: &str, name: &str, cond: impl Fn(&K) -> bool + Send + 'static) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned
            + Send
            + 'static,
    {
        let api: Api<K> = self.api_in(ns);
        let fut = await_condition(api.clone(), name, move |o: Option<&K>| o.is_some_and(&cond));
        match tokio::time::timeout(WAIT, fut).await {
            Ok(Ok(Some(obj))) => obj,
            other => {
                let now = api.get_opt(name).await.ok().flatten();
                panic!("timed out waiting for {} {ns}/{name} ({other:?}); it is now: {now:#?}", K::kind(&()))
            }
        }
    }

    /// Waits until the named Release's status satisfies `cond`.
    pub async fn wait_release(
        &self,
        name: &str,
        cond: impl Fn(&ReleaseStatus) -> bool + Send + 'static,
    ) -> Release {
        self.wait_for::<Release>(name, move |r| r.status.as_ref().is_some_and(&cond)).await
    }

    pub async fn wait_gone<K>(&self, ns: &str, name: &str)
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned
            + Send
            + 'static,
    {
        let api: Api<K> = self.api_in(ns);
        let fut = await_condition(api, name, |o: Option<&K>| o.is_none());
        tokio::time::timeout(WAIT, fut)
            .await
            .unwrap_or_else(|_| panic!("{} {ns}/{name} still exists", K::kind(&())))
            .unwrap();
    }

    /// A barrier for checks that nothing happened: touches `name` with an annotation no reconciler
    /// reads, then waits until the operator has finished a reconcile of it at that version or a
    /// later one. Whatever happened to the object before has then been acted upon, so a check that
    /// nothing changed cannot pass merely because the operator has not looked yet.
    pub async fn nudge<K>(&self, name: &str)
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned,
    {
        static NUDGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NUDGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let touch = json!({"metadata": {"annotations": {"test.tuskfish.dev/nudge": n.to_string()}}});
        let touched: K =
            self.api::<K>().patch(name, &PatchParams::default(), &Patch::Merge(&touch)).await.unwrap();
        let rv = touched.meta().resource_version.clone().unwrap();
        let kind = K::kind(&());
        let what = format!("the operator to reconcile {kind} {}/{name} after a nudge", self.ns);
        within(&what, harness().reconciled.wait_for(&kind, &self.ns, name, &rv)).await;
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        // Best effort: namespaces are throwaway (the whole control plane is, under `make test`).
    }
}

pub async fn delete<K>(api: &Api<K>, name: &str)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned,
{
    api.delete(name, &DeleteParams::default()).await.unwrap();
}

/// Applies one object, resolving its kind through discovery.
pub async fn apply_value(
    client: &Client,
    default_ns: Option<&str>,
    obj: Value,
) -> Result<DynamicObject, kube::Error> {
    apply_value_as(client, default_ns, obj, "test-user").await
}

/// Server-side applies one object as field manager `manager`.
pub async fn apply_value_as(
    client: &Client,
    default_ns: Option<&str>,
    mut obj: Value,
    manager: &str,
) -> Result<DynamicObject, kube::Error> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let (ar, caps) = pinned_kind(client, &gvk).await?;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .map(str::to_string)
            .or(default_ns.map(str::to_string))
            .unwrap();
        obj["metadata"]["namespace"] = json!(ns);
        Api::namespaced_with(client.clone(), &ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    api.patch(&name, &PatchParams::apply(manager).force(), &Patch::Apply(&obj)).await
}

/// Applies every document of a YAML file, in order; an Approval as the user it names (impersonated,
/// as `kubectl --as`), since the API server accepts an Approval only from its approver.
pub async fn apply_yaml_file(client: &Client, path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let applied = match (doc["kind"].as_str(), doc["spec"]["approver"].as_str()) {
            (Some("Approval"), Some(approver)) => {
                let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
                wait_allowed(client, approver, &[], "patch", "approvals", ns).await;
                apply_value(&client_as(approver, &[]).await, None, doc.clone()).await
            }
            _ => apply_value(client, None, doc).await,
        };
        applied.unwrap_or_else(|e| panic!("applying {}: {e}", path.display()));
    }
}

/// `examples/` of the repository (what the README and `make demo` apply).
pub fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Applies the seed story of `examples/` (its top level, in file order) from a clean slate: the
/// examples use fixed namespaces, which a reused test cluster may still hold.
pub async fn apply_examples(client: &Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["finance", "finance-dev-1-3", "finance-dev-1-4", "finance-test", "finance-prod"] {
        if namespaces.delete(ns, &DeleteParams::default()).await.is_ok() {
            let gone = await_condition(namespaces.clone(), ns, |n: Option<&Namespace>| n.is_none());
            within("old example namespaces deleted", gone).await.unwrap();
        }
    }
    let mut files: Vec<_> = std::fs::read_dir(examples()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
        apply_yaml_file(client, f).await;
    }
}

/// Runs git in `dir` as a developer would (an identity, no signing); its output. Panics on failure.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Dev", "-c", "user.email=dev@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
    );
    h.finish() as u32
}

/// Runs `f` with a timeout; for steps that must finish but are not conditions on an object.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A Release status that runs `version` healthily.
pub fn healthy_at(version: impl Into<String>) -> impl Fn(&ReleaseStatus) -> bool {
    let version = version.into();
    move |s| s.phase == Some(Phase::Healthy) && s.current_version.as_deref() == Some(version.as_str())
}

/// A Release status whose `Held` condition is True for `reason`.
pub fn held(reason: &'static str) -> impl Fn(&ReleaseStatus) -> bool {
    move |s| find_condition(&s.conditions, "Held").is_some_and(|c| c.status == "True" && c.reason == reason)
}

/// A child process that is killed when the test ends, however it ends.
/// GET over plain HTTP/1.0 from a process the test started (no client library needed for the
/// metrics and health endpoints on loopback): the status and the body.
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The value of series `name` (with its labels) in a `/metrics` text; panics when it is absent.
pub fn metric_of(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
}

pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the `tuskfish` binary against the test cluster (`args` after `--kubeconfig`), its log in
/// the temp directory under `log`.
pub fn tuskfish_process(args: &[&str], log: &str) -> Proc {
    let kubeconfig = kubeconfig();
    let args: Vec<&str> =
        ["--kubeconfig", kubeconfig.as_str()].into_iter().chain(args.iter().copied()).collect();
    process(env!("CARGO_BIN_EXE_tuskfish"), &args, &std::env::temp_dir().join(log))
}

/// Starts `program` with its stderr in the file `log`, killed when the returned value is dropped.
pub fn process(program: &str, args: &[&str], log: &std::path::Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    let child = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    Proc(child)
}

/// A kubeconfig for the test cluster that authenticates as ServiceAccount `ns/sa` (a TokenRequest
/// token), written to a temporary file.
pub async fn service_account_kubeconfig(admin: &Client, ns: &str, sa: &str) -> std::path::PathBuf {
    let token: Value = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(admin.clone(), ns)
        .create_subresource(
            "token",
            sa,
            &PostParams::default(),
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
        )
        .await
        .unwrap();
    let mut kc: Value = serde_saphyr::from_str(&std::fs::read_to_string(kubeconfig()).unwrap()).unwrap();
    kc["users"][0]["user"] = json!({"token": token["status"]["token"]});
    let path = std::env::temp_dir().join(format!("{ns}-{sa}.kubeconfig"));
    std::fs::write(&path, serde_json::to_string(&kc).unwrap()).unwrap();
    path
}

/// Runs a command to its end with `stdin` as its input (kubectl apply -f -, the CLI).
pub async fn run_with_stdin(mut cmd: std::process::Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let input = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}
