//! Whether an endpoint answers: the breaker of each lane, a pure state machine. After
//! [`UNREACHABLE_AFTER`] attempts in a row that got no answer (DNS, connect, TLS, timeout)
//! the lane pauses, and only a single probe tries it, after 1 s, 2 s, 4 s … up to
//! [`MAX_PAUSE`]; the first answer of any kind resumes it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{MAX_PAUSE, UNREACHABLE_AFTER};

/// Whether an endpoint answers; see the module's invariant.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Attempts in a row that got no answer.
    pub(super) unanswered: u32,
    /// Paused until then (a probe may go once it has passed).
    pub(super) paused_until: Option<DateTime<Utc>>,
    /// Failed probes since the pause began.
    pub(super) probes: u32,
    /// A probe is in flight.
    pub(super) probing: bool,
    /// Counts pauses, so that a probe of an earlier pause is not taken for the current one.
    pub(super) epoch: u32,
    /// Another node paused the endpoint (the store said so at the last take): nothing
    /// starts here until then, when the store is asked again.
    pub(super) held_until: Option<DateTime<Utc>>,
}

/// What a lane lets the scheduler start now.
pub(super) enum Gate {
    /// Up to its concurrency.
    Open,
    /// One probe of the pause numbered so.
    Probe(u32),
    /// Nothing (until then, if known).
    Shut(Option<DateTime<Utc>>),
}

impl Health {
    pub(super) fn gate(&self, now: DateTime<Utc>) -> Gate {
        if let Some(held) = self.held_until
            && now < held
        {
            return Gate::Shut(Some(held));
        }
        match self.paused_until {
            None => Gate::Open,
            Some(until) if now < until => Gate::Shut(Some(until)),
            Some(_) if self.probing => Gate::Shut(None),
            Some(_) => Gate::Probe(self.epoch),
        }
    }

    /// Notes how an attempt ended: `answered` as in `Verdict::reached`; `probe` is the
    /// pause it probed, if it was a probe. Returns a message when the lane pauses or resumes.
    pub(super) fn attempted(
        &mut self,
        answered: Option<bool>,
        probe: Option<u32>,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let probe = probe == Some(self.epoch) && self.probing;
        if probe {
            self.probing = false;
        }
        match answered {
            Some(true) => {
                let was_paused = self.paused_until.is_some();
                *self = Health {
                    epoch: self.epoch,
                    held_until: self.held_until,
                    ..Health::default()
                };
                was_paused.then(|| "answers again: its deliveries resume".to_string())
            }
            Some(false) if self.paused_until.is_none() => {
                self.unanswered += 1;
                (self.unanswered >= UNREACHABLE_AFTER).then(|| {
                    self.epoch = self.epoch.wrapping_add(1);
                    self.paused_until = Some(now + chrono::Duration::seconds(1));
                    format!(
                        "did not answer {} attempts in a row: pausing its deliveries, probing with one at a time (every 1s, then longer, up to {}s)",
                        self.unanswered,
                        MAX_PAUSE.as_secs()
                    )
                })
            }
            Some(false) if probe => {
                self.probes += 1;
                let wait = Duration::from_secs(1u64 << self.probes.min(16)).min(MAX_PAUSE);
                self.paused_until =
                    Some(now + chrono::Duration::from_std(wait).unwrap_or_default());
                None
            }
            // An attempt that started before the pause, or one that never reached the
            // network (a render error, a blocked address): no news about the endpoint.
            Some(false) | None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    /// Runs one probe at `now`: checks the gate lets exactly one go, and reports it.
    fn probe(h: &mut Health, answered: Option<bool>, now: DateTime<Utc>) -> Option<String> {
        let Gate::Probe(epoch) = h.gate(now) else {
            panic!("no probe due at {now}: {h:?}");
        };
        h.probing = true;
        assert!(matches!(h.gate(now), Gate::Shut(None)), "a second probe");
        h.attempted(answered, Some(epoch), now)
    }

    #[test]
    fn pauses_after_five_unanswered_attempts_and_backs_off_probes() {
        let mut h = Health::default();
        for _ in 0..4 {
            assert_eq!(h.attempted(Some(false), None, at(0)), None);
            assert!(matches!(h.gate(at(0)), Gate::Open));
        }
        assert!(h.attempted(Some(false), None, at(0)).is_some());
        assert!(matches!(h.gate(at(0)), Gate::Shut(Some(t)) if t == at(1)));
        // Probes at 1 s, then 2 s, 4 s, 8 s … after the one before, never more than 60 s.
        let mut now = at(1);
        for wait in [2, 4, 8, 16, 32, 60, 60] {
            assert_eq!(probe(&mut h, Some(false), now), None);
            assert!(
                matches!(h.gate(now), Gate::Shut(Some(t)) if t == now + chrono::Duration::seconds(wait))
            );
            now += chrono::Duration::seconds(wait);
        }
        // Failures that say nothing about the endpoint (a render error) change nothing.
        assert_eq!(probe(&mut h, None, now), None);
        assert!(matches!(h.gate(now), Gate::Probe(_)));
        // Any answer resumes.
        assert!(probe(&mut h, Some(true), now).is_some());
        assert!(matches!(h.gate(now), Gate::Open));
        assert_eq!(h.unanswered, 0);
    }

    #[test]
    fn an_answer_resets_the_count_and_a_stale_probe_is_not_taken_for_a_new_one() {
        let mut h = Health::default();
        for _ in 0..4 {
            h.attempted(Some(false), None, at(0));
        }
        h.attempted(Some(true), None, at(0));
        h.attempted(Some(false), None, at(0));
        assert!(matches!(h.gate(at(0)), Gate::Open), "count restarts");

        for _ in 0..4 {
            h.attempted(Some(false), None, at(0));
        }
        let Gate::Probe(first) = h.gate(at(2)) else {
            panic!("{h:?}")
        };
        h.probing = true;
        // An attempt from before the pause is answered while the probe is out: resume,
        // then five more failures pause again and a new probe goes.
        h.attempted(Some(true), None, at(2));
        for _ in 0..5 {
            h.attempted(Some(false), None, at(2));
        }
        let Gate::Probe(second) = h.gate(at(4)) else {
            panic!("{h:?}")
        };
        assert_ne!(first, second);
        h.probing = true;
        // The old probe ends: the new one is still the only one out.
        h.attempted(Some(false), Some(first), at(4));
        assert!(matches!(h.gate(at(4)), Gate::Shut(None)));
        h.attempted(Some(false), Some(second), at(4));
        assert!(matches!(h.gate(at(5)), Gate::Shut(Some(_))));
    }
}
