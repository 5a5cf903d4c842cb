//! Whether to take, keep or leave a Lease: a pure function of what was observed and when.
//!
//! Like client-go, expiry is judged by *our* clock since we last saw the record change, never by
//! comparing the holder's `renewTime` with our clock, so clock skew between replicas cannot make two
//! leaders.

use std::time::{Duration, Instant};

/// The parts of a Lease that matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub holder: Option<String>,
    /// `renewTime` as written (compared for change only).
    pub renew_time: Option<String>,
    pub duration: Duration,
}

/// A record and the local instant it was first seen in this form.
#[derive(Clone, Debug)]
pub struct Observation {
    pub record: Record,
    pub since: Instant,
}

impl Observation {
    /// Keeps `since` while the record is unchanged, so that a holder who stopped renewing expires.
    pub fn update(previous: Option<Observation>, record: Record, now: Instant) -> Observation {
        match previous {
            Some(p) if p.record == record => p,
            _ => Observation { record, since: now },
        }
    }
}

/// Whether the holder of an observed Lease is alive: it names one, and its record changed within
/// a lease duration (by our clock, as for taking it).
pub fn held(observed: &Observation, now: Instant) -> bool {
    observed.record.holder.as_deref().is_some_and(|h| !h.is_empty())
        && now.duration_since(observed.since) < observed.record.duration
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it.
    Create,
    /// Free or expired (or already ours): write ourselves in.
    Take,
    /// Someone else holds it: look again after the retry period.
    Wait,
}

pub fn step(me: &str, observed: Option<&Observation>, now: Instant) -> Step {
    let Some(o) = observed else { return Step::Create };
    match o.record.holder.as_deref() {
        None | Some("") => Step::Take,
        Some(h) if h == me => Step::Take,
        Some(_) if now.duration_since(o.since) >= o.record.duration => Step::Take,
        Some(_) => Step::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: Option<&str>, renew: &str) -> Record {
        Record {
            holder: holder.map(String::from),
            renew_time: Some(renew.into()),
            duration: Duration::from_secs(15),
        }
    }

    #[test]
    fn steps() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let seen = |r: Record, s: u64| Observation { record: r, since: at(s) };
        let cases = [
            (None, 0, Step::Create),
            (Some(seen(rec(None, "a"), 0)), 0, Step::Take),
            (Some(seen(rec(Some(""), "a"), 0)), 0, Step::Take),
            (Some(seen(rec(Some("me"), "a"), 0)), 0, Step::Take),
            (Some(seen(rec(Some("other"), "a"), 0)), 14, Step::Wait),
            (Some(seen(rec(Some("other"), "a"), 0)), 15, Step::Take),
        ];
        for (i, (o, now, want)) in cases.into_iter().enumerate() {
            assert_eq!(step("me", o.as_ref(), at(now)), want, "case {i}");
        }
    }

    #[test]
    fn a_renewing_holder_never_expires() {
        let t0 = Instant::now();
        let mut o = Observation::update(None, rec(Some("other"), "r1"), t0);
        for i in 1..10u64 {
            let now = t0 + Duration::from_secs(10 * i);
            o = Observation::update(Some(o), rec(Some("other"), &format!("r{}", i + 1)), now);
            assert_eq!(step("me", Some(&o), now + Duration::from_secs(5)), Step::Wait);
        }
        // It stops renewing: the same record for a whole lease duration expires it.
        let stale = t0 + Duration::from_secs(90);
        let o = Observation::update(Some(o), rec(Some("other"), "r10"), stale);
        assert_eq!(step("me", Some(&o), stale + Duration::from_secs(15)), Step::Take);
    }
}
