//! Where a Notification's delivery stands in the stream of pipeline Events, so that a restart
//! neither repeats nor loses notices. Pure.
//!
//! Events from several writers (the operator, the CLI) reach the watch slightly out of order, so
//! the cursor is a watermark that trails the newest handled notice by [`SKEW`], plus the notices
//! handled since the watermark. A notice older than the watermark counts as handled.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::notice::Notice;
use crate::api::Cursor as Saved;

/// How late a notice may reach the watch behind a newer one and still be delivered.
pub const SKEW: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    watermark: Timestamp,
    handled: BTreeSet<(Timestamp, String)>,
}

impl Cursor {
    /// From the saved cursor, or for a Notification never delivered, from its creation: what
    /// happened before it existed is not its business.
    pub fn from_saved(saved: Option<&Saved>, created: Timestamp) -> Self {
        let Some(saved) = saved else { return Self { watermark: created, handled: BTreeSet::new() } };
        let watermark = saved.time.parse().unwrap_or(created);
        let handled = saved
            .handled
            .iter()
            .filter_map(|h| {
                let (time, key) = h.split_once(' ')?;
                Some((time.parse().ok()?, key.to_string()))
            })
            .collect();
        Self { watermark, handled }
    }

    pub fn is_handled(&self, n: &Notice) -> bool {
        n.time < self.watermark || self.handled.contains(&(n.time, n.key.clone()))
    }

    /// Marks `n` handled (delivered or given up on).
    pub fn handle(&mut self, n: &Notice) {
        self.handled.insert((n.time, n.key.clone()));
        let newest = self.handled.iter().map(|(t, _)| *t).max().unwrap_or(self.watermark);
        let skew = SignedDuration::try_from(SKEW).unwrap_or(SignedDuration::ZERO);
        let trailing = newest.checked_sub(skew).unwrap_or(newest);
        self.watermark = self.watermark.max(trailing);
        let watermark = self.watermark;
        self.handled.retain(|(t, _)| *t >= watermark);
    }

    pub fn saved(&self) -> Saved {
        Saved {
            time: self.watermark.to_string(),
            handled: self.handled.iter().map(|(t, k)| format!("{t} {k}")).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NoticeKind;

    fn notice(key: &str, at: &str) -> Notice {
        Notice {
            kind: NoticeKind::RolloutSucceeded,
            key: key.into(),
            time: at.parse().unwrap(),
            reason: "RolloutComplete".into(),
            warning: false,
            namespace: "finance".into(),
            object: "Release/r".into(),
            app: None,
            environment: None,
            message: String::new(),
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn nothing_before_the_notification_existed() {
        let c = Cursor::from_saved(None, ts("2026-12-06T10:00:00Z"));
        assert!(c.is_handled(&notice("a/1", "2026-12-06T09:59:59.9Z")));
        assert!(!c.is_handled(&notice("b/1", "2026-12-06T10:00:00.1Z")));
    }

    #[test]
    fn late_notices_within_the_skew_still_count_and_nothing_repeats_after_a_restart() {
        let mut c = Cursor::from_saved(None, ts("2026-12-06T10:00:00Z"));
        let (a, b, late) = (
            notice("a/1", "2026-12-06T10:05:00Z"),
            notice("b/1", "2026-12-06T10:05:30Z"),
            notice("c/1", "2026-12-06T10:04:40Z"),
        );
        c.handle(&a);
        c.handle(&b);
        assert!(!c.is_handled(&late), "20s behind the newest: still delivered");
        c.handle(&late);
        // Saved and read back (a restart): the same answers.
        let back = Cursor::from_saved(Some(&c.saved()), ts("2020-01-01T00:00:00Z"));
        assert_eq!(back, c);
        for n in [&a, &b, &late] {
            assert!(back.is_handled(n), "{} again after a restart", n.key);
        }
        assert!(!back.is_handled(&notice("d/1", "2026-12-06T10:06:00Z")));
        // A repeat of an Event is a new occurrence.
        assert!(!back.is_handled(&notice("a/2", "2026-12-06T10:07:00Z")));
    }

    #[test]
    fn the_cursor_stays_small() {
        let mut c = Cursor::from_saved(None, ts("2026-12-06T00:00:00Z"));
        for i in 0..1000 {
            let at = ts("2026-12-06T00:00:00Z").checked_add(SignedDuration::from_secs(i * 10)).unwrap();
            c.handle(&notice(&format!("n{i}/1"), &at.to_string()));
        }
        assert!(c.saved().handled.len() <= 7, "only the last minute: {}", c.saved().handled.len());
    }
}
