//! XEP-0198 counters of a session and the stanzas the client has not acknowledged yet.
//!
//! Counters wrap at 2^32 as the XEP says; every comparison goes through `wrapping_sub`.

use std::collections::VecDeque;

use rempart_xep::element::Element;

/// The client acknowledged more stanzas than the server sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandledTooHigh {
    /// The client's `h`.
    pub h: u32,
    /// The server's count of stanzas sent.
    pub sent: u32,
}

/// Counters in both directions and the unacknowledged outbound queue.
#[derive(Debug, Default)]
pub struct Acks {
    /// Stanzas handed to the stream (written, or waiting to be while detached), mod 2^32.
    sent: u32,
    /// Stanzas received from the client and handled, mod 2^32.
    handled: u32,
    /// Stanzas sent and not yet acknowledged, oldest first, with their estimated sizes.
    unacked: VecDeque<(Element, usize)>,
    /// Serialised size of `unacked`, roughly.
    unacked_bytes: usize,
}

impl Acks {
    /// The counters and queue of a session saved at shutdown.
    pub fn restored(sent: u32, handled: u32, unacked: Vec<(Element, usize)>) -> Acks {
        let unacked_bytes = unacked.iter().map(|(_, cost)| cost).sum();
        Acks {
            sent,
            handled,
            unacked: unacked.into(),
            unacked_bytes,
        }
    }

    /// Stanzas sent to the client so far, mod 2^32.
    pub fn sent_count(&self) -> u32 {
        self.sent
    }

    /// Counts a stanza handed to the stream and keeps it until it is acknowledged.
    pub fn sent(&mut self, stanza: Element, cost: usize) {
        self.sent = self.sent.wrapping_add(1);
        self.unacked_bytes = self.unacked_bytes.saturating_add(cost);
        self.unacked.push_back((stanza, cost));
    }

    /// Counts a stanza received from the client.
    pub fn handled_one(&mut self) {
        self.handled = self.handled.wrapping_add(1);
    }

    /// Stanzas handled from the client so far, the `h` the server reports.
    pub fn handled(&self) -> u32 {
        self.handled
    }

    /// Applies the client's `h`: the stanzas it covers leave the queue.
    pub fn acknowledge(&mut self, h: u32) -> Result<(), HandledTooHigh> {
        let acked_before = self.sent.wrapping_sub(self.queued_count());
        let newly = h.wrapping_sub(acked_before);
        if newly > self.queued_count() {
            return Err(HandledTooHigh { h, sent: self.sent });
        }
        for _ in 0..newly {
            if let Some((_, cost)) = self.unacked.pop_front() {
                self.unacked_bytes = self.unacked_bytes.saturating_sub(cost);
            }
        }
        Ok(())
    }

    /// Stanzas waiting for an acknowledgement.
    pub fn unacked(&self) -> impl Iterator<Item = &Element> {
        self.unacked.iter().map(|(stanza, _)| stanza)
    }

    /// How many stanzas wait for an acknowledgement.
    pub fn len(&self) -> usize {
        self.unacked.len()
    }

    /// Whether every stanza sent was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.unacked.is_empty()
    }

    /// Roughly how many bytes the unacknowledged stanzas hold.
    pub fn bytes(&self) -> usize {
        self.unacked_bytes
    }

    /// Empties the queue, for rerouting what the client never acknowledged.
    pub fn take_unacked(&mut self) -> Vec<Element> {
        self.unacked_bytes = 0;
        self.unacked.drain(..).map(|(stanza, _)| stanza).collect()
    }

    fn queued_count(&self) -> u32 {
        // The queue is bounded far below 2^32 by configuration.
        u32::try_from(self.unacked.len()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rempart_xep::ns;

    fn message(id: &str) -> Element {
        Element::new("message", ns::CLIENT).attr("id", id)
    }

    fn ids(acks: &Acks) -> Vec<String> {
        acks.unacked()
            .filter_map(|m| m.get_attr("id").map(str::to_owned))
            .collect()
    }

    #[test]
    fn an_answer_removes_the_stanzas_it_covers() {
        let mut acks = Acks::default();
        for id in ["1", "2", "3"] {
            acks.sent(message(id), 10);
        }
        acks.acknowledge(2).expect("two were sent");
        assert_eq!(ids(&acks), ["3"]);
        acks.acknowledge(2)
            .expect("a repeated answer changes nothing");
        assert_eq!(ids(&acks), ["3"]);
        acks.acknowledge(3).expect("all were sent");
        assert!(acks.is_empty());
    }

    #[test]
    fn an_answer_above_what_was_sent_is_refused() {
        let mut acks = Acks::default();
        acks.sent(message("1"), 10);
        assert_eq!(acks.acknowledge(2), Err(HandledTooHigh { h: 2, sent: 1 }));
        assert_eq!(ids(&acks), ["1"]);
    }

    #[test]
    fn counters_wrap_at_two_to_the_thirty_second() {
        let mut acks = Acks {
            sent: u32::MAX - 1,
            ..Acks::default()
        };
        for id in ["a", "b", "c"] {
            acks.sent(message(id), 10);
        }
        assert_eq!(acks.sent, 1);
        acks.acknowledge(u32::MAX).expect("wrapped count");
        assert_eq!(ids(&acks), ["b", "c"]);
        acks.acknowledge(1).expect("past the wrap");
        assert!(acks.is_empty());
    }

    #[test]
    fn handled_count_wraps() {
        let mut acks = Acks {
            handled: u32::MAX,
            ..Acks::default()
        };
        acks.handled_one();
        assert_eq!(acks.handled(), 0);
    }
}
