//! What the push module remembers between messages, in memory only: per account, the
//! messages waiting since its user last looked (the summary's count and last sender), when
//! each push service was last notified, and the notifications still awaiting an answer.
//!
//! Pacing: a service gets at most one notification per interval. The first goes at once;
//! later ones within the interval are coalesced into a single notification at its end,
//! carrying the latest count, so that a burst wakes the phone once and nothing is lost.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jid::{BareJid, Jid};
use rempart_xep::push::Summary;

use crate::modules::push::registrations::Target;

/// What to do with a notification for one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Send it now.
    Now,
    /// Send one notification after this delay, with the summary as it will be then.
    After(Duration),
    /// A notification is already scheduled for the end of the interval: it will carry this
    /// message's count too.
    Coalesced,
}

/// When a service was last notified, and whether a coalesced notification is scheduled.
#[derive(Debug, Clone, Copy)]
struct Throttle {
    last_sent: Instant,
    scheduled: bool,
}

/// The messages waiting for an account's user.
#[derive(Debug, Clone, Default)]
struct Waiting {
    count: u32,
    last_sender: Option<Jid>,
    last_body: Option<String>,
}

/// The in-memory push state of one account.
#[derive(Debug, Default)]
struct AccountPacing {
    waiting: Option<Waiting>,
    throttles: HashMap<Target, Throttle>,
    /// Notification IQ ids awaiting an answer, one per target at most.
    outstanding: HashMap<String, Target>,
}

impl AccountPacing {
    fn is_empty(&self) -> bool {
        self.waiting.is_none() && self.throttles.is_empty() && self.outstanding.is_empty()
    }
}

/// The push state of every account with something waiting or outstanding.
#[derive(Debug, Default)]
pub struct Pacing {
    accounts: Mutex<HashMap<BareJid, AccountPacing>>,
}

impl Pacing {
    /// Runs `change` on the account's state, dropping the state when nothing is left in it.
    fn with<T>(&self, account: &BareJid, change: impl FnOnce(&mut AccountPacing) -> T) -> T {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let state = accounts.entry(account.clone()).or_default();
        let result = change(state);
        if state.is_empty() {
            accounts.remove(account);
        }
        result
    }

    /// Counts one more message for the account; returns the summary to send.
    pub fn record(&self, account: &BareJid, sender: Option<Jid>, body: Option<String>) -> Summary {
        self.with(account, |state| {
            let waiting = state.waiting.get_or_insert_with(Waiting::default);
            waiting.count = waiting.count.saturating_add(1);
            waiting.last_sender = sender;
            waiting.last_body = body;
            summary(waiting)
        })
    }

    /// The user looked (a client is active): nothing waits any more, and the next message
    /// may notify at once.
    pub fn seen(&self, account: &BareJid) {
        self.with(account, |state| {
            state.waiting = None;
            state.throttles.clear();
        });
    }

    /// Decides when a notification for `target` goes out, `now`, with at most one per
    /// `interval`.
    pub fn pace(
        &self,
        account: &BareJid,
        target: &Target,
        now: Instant,
        interval: Duration,
    ) -> Pace {
        if interval.is_zero() {
            return Pace::Now;
        }
        self.with(account, |state| match state.throttles.get_mut(target) {
            None => {
                let throttle = Throttle {
                    last_sent: now,
                    scheduled: false,
                };
                state.throttles.insert(target.clone(), throttle);
                Pace::Now
            }
            Some(throttle) if throttle.scheduled => Pace::Coalesced,
            Some(throttle) => {
                let since = now.saturating_duration_since(throttle.last_sent);
                if since >= interval {
                    throttle.last_sent = now;
                    Pace::Now
                } else {
                    throttle.scheduled = true;
                    Pace::After(interval - since)
                }
            }
        })
    }

    /// The scheduled notification for `target` is due `now`: returns the summary to send,
    /// or `None` when the user looked in the meantime (which also cancels the schedule).
    pub fn due(&self, account: &BareJid, target: &Target, now: Instant) -> Option<Summary> {
        self.with(account, |state| {
            let throttle = state.throttles.get_mut(target)?;
            if !throttle.scheduled {
                return None;
            }
            throttle.scheduled = false;
            throttle.last_sent = now;
            state.waiting.as_ref().map(summary)
        })
    }

    /// A notification with IQ id `id` went to `target`; an older one still unanswered is
    /// forgotten (its answer, if it comes, is then ignored).
    pub fn sent(&self, account: &BareJid, target: &Target, id: String) {
        self.with(account, |state| {
            state.outstanding.retain(|_, t| t != target);
            state.outstanding.insert(id, target.clone());
        });
    }

    /// The target of the notification `id` when `from` answers it, once.
    pub fn answered(&self, account: &BareJid, id: &str, from: &Jid) -> Option<Target> {
        self.with(account, |state| {
            if state.outstanding.get(id)?.service != *from {
                return None;
            }
            state.outstanding.remove(id)
        })
    }

    /// Forgets disabled targets.
    pub fn forget(&self, account: &BareJid, targets: &[Target]) {
        self.with(account, |state| {
            state.throttles.retain(|t, _| !targets.contains(t));
            state.outstanding.retain(|_, t| !targets.contains(t));
        });
    }
}

fn summary(waiting: &Waiting) -> Summary {
    Summary {
        message_count: Some(waiting.count),
        last_message_sender: waiting.last_sender.clone(),
        last_message_body: waiting.last_body.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn alice() -> BareJid {
        BareJid::new("alice@example.org").expect("jid")
    }

    fn target() -> Target {
        Target {
            service: Jid::new("push.example").expect("jid"),
            node: "n".to_owned(),
        }
    }

    #[test]
    fn the_first_notification_goes_at_once_and_the_next_waits_for_the_interval() {
        let pacing = Pacing::default();
        let start = Instant::now();
        assert_eq!(pacing.pace(&alice(), &target(), start, MINUTE), Pace::Now);
        let later = start + Duration::from_secs(20);
        assert_eq!(
            pacing.pace(&alice(), &target(), later, MINUTE),
            Pace::After(Duration::from_secs(40))
        );
        assert_eq!(
            pacing.pace(&alice(), &target(), later, MINUTE),
            Pace::Coalesced
        );
    }

    #[test]
    fn a_due_notification_carries_the_latest_count_and_restarts_the_interval() {
        let pacing = Pacing::default();
        let start = Instant::now();
        pacing.record(&alice(), None, None);
        pacing.pace(&alice(), &target(), start, MINUTE);
        pacing.record(&alice(), None, None);
        pacing.pace(&alice(), &target(), start, MINUTE);
        pacing.record(&alice(), None, None);
        let end = start + MINUTE;
        let due = pacing.due(&alice(), &target(), end).expect("a summary");
        assert_eq!(due.message_count, Some(3));
        assert_eq!(
            pacing.pace(&alice(), &target(), end + Duration::from_secs(1), MINUTE),
            Pace::After(Duration::from_secs(59))
        );
    }

    #[test]
    fn once_the_user_looked_nothing_is_due_and_the_count_starts_again() {
        let pacing = Pacing::default();
        let start = Instant::now();
        pacing.record(&alice(), None, None);
        pacing.pace(&alice(), &target(), start, MINUTE);
        pacing.pace(&alice(), &target(), start, MINUTE);
        pacing.seen(&alice());
        assert_eq!(pacing.record(&alice(), None, None).message_count, Some(1));
        assert_eq!(pacing.pace(&alice(), &target(), start, MINUTE), Pace::Now);
        // The schedule made before the user looked sends nothing.
        assert_eq!(pacing.due(&alice(), &target(), start + MINUTE), None);
    }

    #[test]
    fn without_an_interval_every_notification_goes_at_once() {
        let pacing = Pacing::default();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(
                pacing.pace(&alice(), &target(), now, Duration::ZERO),
                Pace::Now
            );
        }
    }

    #[test]
    fn only_the_service_notified_can_answer_and_only_once() {
        let pacing = Pacing::default();
        pacing.sent(&alice(), &target(), "id1".to_owned());
        let stranger = Jid::new("evil.example").expect("jid");
        assert_eq!(pacing.answered(&alice(), "id1", &stranger), None);
        assert_eq!(
            pacing.answered(&alice(), "id1", &target().service),
            Some(target())
        );
        assert_eq!(pacing.answered(&alice(), "id1", &target().service), None);
    }

    #[test]
    fn a_newer_notification_replaces_the_unanswered_one() {
        let pacing = Pacing::default();
        pacing.sent(&alice(), &target(), "id1".to_owned());
        pacing.sent(&alice(), &target(), "id2".to_owned());
        assert_eq!(pacing.answered(&alice(), "id1", &target().service), None);
        assert!(pacing
            .answered(&alice(), "id2", &target().service)
            .is_some());
    }
}
