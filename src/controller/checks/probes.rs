//! HTTP checks: each runs as a task of its own (a reconcile never waits on a network), its state
//! kept here per Release and run; when it ends, the Release is woken to read it.
//!
//! Kept in memory only: after a restart a run not yet recorded as finished starts its HTTP checks
//! again, which asks the same questions again and changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use tokio::task::AbortHandle;

use crate::api::{HttpCheck, Release};
use crate::controller::triggers::Trigger;
use crate::duration::parse_duration;
use crate::egress::Egress;
use crate::http::{Body, HttpClient};
use crate::plan::verification::{CheckState, http_verdict};
use crate::render::substitute;

const DEFAULT_RETRIES: u32 = 3;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP checks of one Release's current run.
struct Run {
    key: String,
    states: HashMap<String, CheckState>,
    tasks: Vec<AbortHandle>,
}

type Runs = Arc<Mutex<HashMap<ObjectRef<Release>, Run>>>;

pub struct Probes {
    runs: Runs,
    wake: Option<Trigger<Release>>,
}

impl Probes {
    /// `wake`: where a finished check sends its Release (`None`: nobody is told; tests).
    pub fn new(wake: Option<Trigger<Release>>) -> Self {
        Self { runs: Arc::default(), wake }
    }

    /// Where check `name` of run `key` stands; starts it when it has not started yet. A newer run
    /// of the Release stops the older one's checks.
    #[allow(clippy::too_many_arguments)]
    pub fn state(
        &self,
        client: &HttpClient,
        egress: &Egress,
        rel: &Release,
        key: &str,
        name: &str,
        spec: &HttpCheck,
        vars: &BTreeMap<String, String>,
    ) -> CheckState {
        let release = ObjectRef::from_obj(rel);
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let run = runs.entry(release.clone()).or_insert_with(|| Run::new(key));
        if run.key != key {
            run.tasks.iter().for_each(AbortHandle::abort);
            *run = Run::new(key);
        }
        if let Some(s) = run.states.get(name) {
            return s.clone();
        }
        let probe = match Probe::of(spec, vars) {
            Ok(p) => p,
            Err(why) => {
                let failed = CheckState::Failed(why);
                run.states.insert(name.to_string(), failed.clone());
                return failed;
            }
        };
        let started = CheckState::Running(format!("GET {}", probe.url));
        run.states.insert(name.to_string(), started.clone());
        let finished = Finished {
            runs: self.runs.clone(),
            release,
            key: key.to_string(),
            name: name.to_string(),
            wake: self.wake.clone(),
        };
        let task = tokio::spawn(probe.run(client.clone(), egress.clone(), finished));
        run.tasks.push(task.abort_handle());
        started
    }

    /// Stops and forgets the checks of a Release that is gone.
    pub fn forget(&self, rel: &Release) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(run) = runs.remove(&ObjectRef::from_obj(rel)) {
            run.tasks.iter().for_each(AbortHandle::abort);
        }
    }
}

impl Run {
    fn new(key: &str) -> Self {
        Self { key: key.to_string(), states: HashMap::new(), tasks: Vec::new() }
    }
}

/// One HTTP check, ready to run.
struct Probe {
    url: String,
    expect: u16,
    body_matches: Option<regex::Regex>,
    attempts: u32,
    interval: Duration,
    timeout: Duration,
}

impl Probe {
    fn of(spec: &HttpCheck, vars: &BTreeMap<String, String>) -> Result<Self, String> {
        let url = substitute(&spec.url, vars).map_err(|name| {
            format!("http.url uses ${{{name}}}, which is not defined; define it in the Environment's spec.variables")
        })?;
        url.parse::<http::Uri>().map_err(|e| format!("http.url {url} is not a URL: {e}"))?;
        let body_matches = match &spec.body_matches {
            None => None,
            Some(p) => {
                let p = substitute(p, vars)
                    .map_err(|name| format!("http.bodyMatches uses undefined ${{{name}}}"))?;
                Some(
                    regex::Regex::new(&p)
                        .map_err(|e| format!("http.bodyMatches is not a regular expression: {e}"))?,
                )
            }
        };
        let duration = |field: &str, v: &Option<String>, default| match v {
            None => Ok(default),
            Some(s) => {
                parse_duration(s).ok_or_else(|| format!("http.{field}: {s} is not a duration such as 5s"))
            }
        };
        Ok(Self {
            url,
            expect: spec.expect_status.unwrap_or(200),
            body_matches,
            attempts: spec.retries.unwrap_or(DEFAULT_RETRIES).saturating_add(1),
            interval: duration("interval", &spec.interval, DEFAULT_INTERVAL)?,
            timeout: duration("timeout", &spec.timeout, DEFAULT_TIMEOUT)?,
        })
    }

    /// Asks until an answer passes or the attempts run out, then records the result.
    async fn run(self, client: HttpClient, egress: Egress, finished: Finished) {
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            if attempt > 1 {
                tokio::time::sleep(self.interval).await;
            }
            let request = http::Request::get(&self.url).body(Body::default());
            let outcome = match request {
                Err(e) => Err(format!("building the request: {e}")),
                Ok(req) => match client.send(req, self.timeout, &egress).await {
                    Err(e) => Err(e),
                    Ok(a) => http_verdict(a.status, &a.body, self.expect, self.body_matches.as_ref()),
                },
            };
            match outcome {
                Ok(passed) => {
                    return finished.record(CheckState::Passed(format!(
                        "{passed} from {} (attempt {attempt})",
                        self.url
                    )));
                }
                Err(why) => last = why,
            }
        }
        let n = self.attempts;
        finished.record(CheckState::Failed(format!(
            "{last} (GET {}, {n} attempt{})",
            self.url,
            if n == 1 { "" } else { "s" }
        )));
    }
}

/// Where a check's task leaves its result.
struct Finished {
    runs: Runs,
    release: ObjectRef<Release>,
    key: String,
    name: String,
    wake: Option<Trigger<Release>>,
}

impl Finished {
    fn record(self, state: CheckState) {
        {
            let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
            match runs.get_mut(&self.release) {
                Some(run) if run.key == self.key => {
                    run.states.insert(self.name, state);
                }
                // A newer run replaced this one: its result is nobody's.
                _ => return,
            }
        }
        if let Some(w) = &self.wake {
            w.send(self.release);
        }
    }
}
