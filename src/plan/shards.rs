//! Sharding, decided: which shard a pipeline namespace belongs to, and which replica holds which
//! shard. Plain functions over names; the Leases that make a holding exclusive are
//! `controller::sharded`'s.
//!
//! A pipeline namespace is the unit: everything a Release reads (its Environment, AppVersions,
//! Approvals, peers) lives in its pipeline namespace, so a shard that holds the namespace holds
//! every input of every decision in it, and no decision ever needs another shard's cache.

use std::collections::BTreeMap;

/// One shard of `count`: the pipeline namespaces whose name hashes to `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Share {
    pub index: u16,
    pub count: u16,
}

impl Share {
    /// Whether pipeline namespace `pipeline` is this shard's.
    pub fn owns(&self, pipeline: &str) -> bool {
        shard_of(pipeline, self.count) == self.index
    }
}

/// FNV-1a, then a finalizer that spreads its bits: stable across builds, platforms and Rust
/// versions (std's hasher is not), which every replica of every version must agree on.
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finalizer: FNV alone leaves short, similar names close together.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The shard of pipeline namespace `pipeline` among `count` (0 when `count` is 0).
pub fn shard_of(pipeline: &str, count: u16) -> u16 {
    if count == 0 {
        return 0;
    }
    u16::try_from(stable_hash(&[pipeline.as_bytes()]) % u64::from(count)).unwrap_or(0)
}

/// Which member holds each of `count` shards: `members[assign(..)[shard]]`. `None` for every
/// shard when there are no members.
///
/// - Balanced: holdings differ by one at most (3 shards over 2 replicas: 2 and 1).
/// - The same for every replica that sees the same members, in any order.
/// - Stable: each shard goes to the member that ranks it highest (a hash of shard and member),
///   as long as that member has room; so a member joining or leaving moves few shards besides
///   its own, and a hand-over (stop, release, take) is the exception, not the rule.
pub fn assign(count: u16, members: &[&str]) -> Vec<Option<usize>> {
    let mut sorted: Vec<(usize, &str)> = members.iter().copied().enumerate().collect();
    sorted.sort_by(|a, b| a.1.cmp(b.1));
    sorted.dedup_by(|a, b| a.1 == b.1);
    let m = sorted.len();
    if m == 0 {
        return vec![None; usize::from(count)];
    }
    let n = usize::from(count);
    // `n = floor * m + extra`: `extra` members hold one more than `floor`.
    let (floor, extra) = (n / m, n % m);
    let mut load = vec![0usize; m];
    let mut above = 0usize;
    (0..count)
        .map(|shard| {
            let mut ranked: Vec<usize> = (0..m).collect();
            let rank = |i: usize| stable_hash(&[sorted[i].1.as_bytes(), &shard.to_be_bytes()]);
            ranked.sort_by_key(|i| std::cmp::Reverse(rank(*i)));
            // Total room is exactly `n`, so someone always has room.
            let pick = ranked
                .into_iter()
                .find(|i| load[*i] < floor || (load[*i] == floor && above < extra))
                .unwrap_or(0);
            if load[pick] == floor {
                above += 1;
            }
            load[pick] += 1;
            Some(sorted[pick].0)
        })
        .collect()
}

/// A replica as the others see it: its member Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub identity: String,
    /// The `--shards` it runs with.
    pub count: u16,
    /// When its member Lease was created (RFC 3339, set by the API server, not by a replica's
    /// clock; empty: unknown).
    pub since: String,
}

/// Whether `me` (running with `count` shards) must serve nothing, and at once: a single leader is
/// live, or the longest-standing replica runs with another count (the replicas that disagree
/// would split namespaces differently, and two of them could hold one namespace).
pub fn must_yield(count: u16, members: &[Member], unsharded_leader: bool) -> bool {
    if unsharded_leader || count == 0 {
        return true;
    }
    // By creation time (RFC 3339 text from the server, one format: orders as time does), then
    // identity; unknown times last.
    let oldest = members.iter().min_by(|a, b| {
        (a.since.is_empty(), &a.since, &a.identity).cmp(&(b.since.is_empty(), &b.since, &b.identity))
    });
    oldest.is_some_and(|m| m.count != count)
}

/// The shards `me` (running with `count` shards) should hold, given the live `members` (`me`
/// among them) and whether a replica without shards (the single leader Lease) is live: its part
/// of the split among the members of its count, or nothing when it [`must_yield`] (a rolling
/// update that changes `--shards` hands over as the old replicas go).
pub fn held_by(me: &str, count: u16, members: &[Member], unsharded_leader: bool) -> Vec<u16> {
    if must_yield(count, members, unsharded_leader) {
        return Vec::new();
    }
    let same: BTreeMap<&str, ()> =
        members.iter().filter(|m| m.count == count).map(|m| (m.identity.as_str(), ())).collect();
    let names: Vec<&str> = same.keys().copied().chain((!same.contains_key(me)).then_some(me)).collect();
    let Some(mine) = names.iter().position(|n| *n == me) else { return Vec::new() };
    assign(count, &names)
        .into_iter()
        .zip(0..count)
        .filter_map(|(holder, shard)| (holder == Some(mine)).then_some(shard))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn member(identity: &str, count: u16, since: &str) -> Member {
        Member { identity: identity.into(), count, since: since.into() }
    }

    #[test]
    fn namespaces_spread_over_shards() {
        let mut per = [0u32; 3];
        for i in 0..3000 {
            per[usize::from(shard_of(&format!("team-{i}"), 3))] += 1;
        }
        assert!(per.iter().all(|n| (850..1150).contains(n)), "{per:?}");
        // Fixed forever: replicas of different builds must agree (a change here re-shards users).
        assert_eq!([shard_of("finance", 3), shard_of("payments", 3), shard_of("t-a", 7)], [0, 0, 2]);
        assert_eq!(shard_of("anything", 1), 0);
        assert_eq!(shard_of("anything", 0), 0);
    }

    #[test]
    fn the_assignment_table() {
        let holders = |count: u16, members: &[&str]| -> Vec<usize> {
            let got = assign(count, members);
            let mut loads = vec![0; members.len()];
            got.iter().flatten().for_each(|m| loads[*m] += 1);
            loads
        };
        assert_eq!(holders(3, &["a", "b", "c"]), vec![1, 1, 1]);
        let mut two = holders(3, &["a", "b"]);
        two.sort_unstable();
        assert_eq!(two, vec![1, 2]);
        let mut four = holders(3, &["a", "b", "c", "d"]);
        four.sort_unstable();
        assert_eq!(four, vec![0, 1, 1, 1]);
        assert_eq!(assign(2, &[]), vec![None, None]);
        assert_eq!(holders(4, &["a", "a"]).iter().sum::<usize>(), 4, "a member named twice is one");
    }

    #[test]
    fn what_each_replica_holds() {
        let ms = [member("a", 3, "2026-12-07T10:00:00Z"), member("b", 3, "2026-12-07T10:00:01Z")];
        let a = held_by("a", 3, &ms, false);
        let b = held_by("b", 3, &ms, false);
        let all: HashSet<u16> = a.iter().chain(b.iter()).copied().collect();
        assert_eq!(all, HashSet::from([0, 1, 2]));
        assert_eq!(a.len() + b.len(), 3, "{a:?} {b:?}");
        // Its own Lease not seen yet: it still counts itself.
        assert_eq!(held_by("a", 3, &ms[..1], false), vec![0, 1, 2]);
        assert_eq!(held_by("a", 3, &[], false), vec![0, 1, 2]);
        // A single leader is live: nobody holds a shard.
        assert_eq!(held_by("a", 3, &ms, true), Vec::<u16>::new());
        // A newer replica with another count waits for the older ones to go.
        let mixed = [member("a", 3, "2026-12-07T10:00:00Z"), member("new", 4, "2026-12-07T11:00:00Z")];
        assert_eq!(held_by("new", 4, &mixed, false), Vec::<u16>::new());
        assert_eq!(
            held_by("a", 3, &mixed, false),
            vec![0, 1, 2],
            "the other count is not a member of its split"
        );
        assert_eq!(held_by("new", 4, &mixed[1..], false), vec![0, 1, 2, 3]);
        assert!(must_yield(4, &mixed, false) && !must_yield(3, &mixed, false));
        assert!(must_yield(3, &ms, true), "a live single leader");
        // Same creation second: the lower identity is the older, for everyone alike.
        let tie = [member("b", 3, "2026-12-07T10:00:00Z"), member("a", 4, "2026-12-07T10:00:00Z")];
        assert!(must_yield(3, &tie, false) && !must_yield(4, &tie, false));
    }

    proptest! {
        #[test]
        fn every_shard_has_one_holder_and_loads_differ_by_one_at_most(
            count in 1u16..40,
            names in proptest::collection::btree_set("[a-z]{1,6}", 1..12),
        ) {
            let members: Vec<&str> = names.iter().map(String::as_str).collect();
            let got = assign(count, &members);
            prop_assert!(got.iter().all(Option::is_some));
            let mut loads = vec![0usize; members.len()];
            got.iter().flatten().for_each(|m| loads[*m] += 1);
            let (lo, hi) = (loads.iter().min().copied().unwrap_or(0), loads.iter().max().copied().unwrap_or(0));
            prop_assert!(hi - lo <= 1, "{loads:?}");
            // Every replica computes the same, whatever order it lists the members in.
            let reversed: Vec<&str> = members.iter().rev().copied().collect();
            let again: Vec<Option<&str>> = assign(count, &reversed).into_iter().map(|i| i.map(|i| reversed[i])).collect();
            let first: Vec<Option<&str>> = got.into_iter().map(|i| i.map(|i| members[i])).collect();
            prop_assert_eq!(first, again);
        }

        #[test]
        fn replicas_that_agree_split_the_shards_exactly(
            count in 1u16..20,
            names in proptest::collection::btree_set("[a-z]{1,6}", 1..8),
        ) {
            let ms: Vec<Member> = names.iter().map(|n| member(n, count, "2026-12-07T10:00:00Z")).collect();
            let mut seen = Vec::new();
            for m in &ms {
                seen.extend(held_by(&m.identity, count, &ms, false));
            }
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..count).collect::<Vec<_>>());
        }

        #[test]
        fn a_member_leaving_moves_few_shards_besides_its_own(
            names in proptest::collection::btree_set("[a-z]{1,6}", 3..8),
        ) {
            let count = 60u16;
            let members: Vec<&str> = names.iter().map(String::as_str).collect();
            let before: Vec<&str> = assign(count, &members).into_iter().flatten().map(|i| members[i]).collect();
            let gone = members[0];
            let rest = &members[1..];
            let after: Vec<&str> = assign(count, rest).into_iter().flatten().map(|i| rest[i]).collect();
            let moved = before.iter().zip(&after).filter(|(b, a)| **b != gone && b != a).count();
            // Room changes (fewer members hold more each) may move some, never most.
            prop_assert!(moved <= usize::from(count) / 3, "{moved} of {count} moved");
        }
    }
}
