//! Pure: whether an agent is connected, from the Lease it renews on the hub.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::LeaseSpec;

/// The Lease of agent `name` on the hub, in the pipeline namespace it serves.
pub fn lease_name(agent: &str) -> String {
    format!("tuskfish-agent-{agent}")
}

/// How long a Lease counts when it does not say (the agent's default `--lease-duration`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentLink {
    /// Reported within its lease; it lapses in `lapses_in` unless renewed.
    Connected { lapses_in: Duration },
    /// Why the agent does not count as connected.
    NotConnected(String),
}

pub fn agent_link(agent: &str, lease: Option<&LeaseSpec>, now: jiff::Timestamp) -> AgentLink {
    let Some(renewed) = lease.and_then(|l| l.renew_time.as_ref()).map(|t| t.0) else {
        return AgentLink::NotConnected(format!(
            "agent {agent} has never reported: run `tuskfish agent --name {agent}` in that cluster (the book: Environments in other clusters, and agents)"
        ));
    };
    let seconds = lease.and_then(|l| l.lease_duration_seconds).and_then(|s| u64::try_from(s).ok());
    let lease = seconds.map_or(DEFAULT_LEASE, Duration::from_secs);
    let ago = Duration::try_from(now.duration_since(renewed)).unwrap_or_default();
    match lease.checked_sub(ago) {
        Some(left) if !left.is_zero() => AgentLink::Connected { lapses_in: left },
        // No "how long ago": the message must not change while nothing does (status writes).
        _ => AgentLink::NotConnected(format!(
            "agent {agent} last reported at {renewed} and its lease of {}s has lapsed: its Environments are not being deployed",
            lease.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::*;

    fn lease(renewed: &str, seconds: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            lease_duration_seconds: seconds,
            ..Default::default()
        }
    }

    #[test]
    fn a_lapsed_lease_says_the_same_whenever_it_is_looked_at() {
        let l = lease("2026-12-06T09:50:00Z", Some(30));
        let at = |t: &str| agent_link("prod", Some(&l), t.parse().unwrap());
        assert_eq!(at("2026-12-06T10:00:00Z"), at("2026-12-06T11:00:00Z"));
    }

    #[test]
    fn connected_within_the_lease_and_not_after() {
        let now: jiff::Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let secs = Duration::from_secs;
        let cases: Vec<(Option<LeaseSpec>, Result<Duration, &str>)> = vec![
            (None, Err("has never reported: run `tuskfish agent --name prod`")),
            (Some(LeaseSpec::default()), Err("has never reported")),
            (Some(lease("2026-12-06T09:59:50Z", Some(30))), Ok(secs(20))),
            (Some(lease("2026-12-06T09:59:50Z", None)), Ok(secs(20))),
            (Some(lease("2026-12-06T09:59:55Z", Some(6))), Ok(secs(1))),
            (Some(lease("2026-12-06T09:59:30Z", Some(30))), Err("its lease of 30s has lapsed")),
            (Some(lease("2026-12-06T09:50:00Z", Some(30))), Err("last reported at 2026-12-06T09:50:00Z and")),
            // A clock ahead of ours: renewed "in the future" counts as just now.
            (Some(lease("2026-12-06T10:00:05Z", Some(30))), Ok(secs(30))),
        ];
        for (l, want) in cases {
            match (agent_link("prod", l.as_ref(), now), want) {
                (AgentLink::Connected { lapses_in }, Ok(w)) => assert_eq!(lapses_in, w, "{l:?}"),
                (AgentLink::NotConnected(m), Err(w)) => assert!(m.contains(w), "{m}"),
                (got, want) => panic!("{l:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
