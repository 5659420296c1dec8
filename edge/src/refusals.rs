//! The answers the edge decides itself (a flag, the room, a limit, a bad request), counted by
//! sale and code in each instance and sent to the origin every [`SEND_EVERY_MS`] at most, so
//! the console and Prometheus show what the edge turned away ([`EdgeRefusals`]). An instance
//! that dies loses its unsent counts: these are for watching, not for accounting.

use std::collections::BTreeMap;

use seckill_protocol::errors::{EdgeRefusals, RefusalCount, MAX_REFUSAL_COUNTS};

/// How often an instance sends its counts, at most.
pub const SEND_EVERY_MS: u64 = 5_000;

/// One instance's counts since it last sent them.
#[derive(Debug, Default)]
pub struct RefusalTally {
    counts: BTreeMap<(Option<u64>, &'static str), u64>,
    last_sent_ms: u64,
}

impl RefusalTally {
    /// Counts one answer of `code`, of `product_id`'s sale if the request named one.
    pub fn note(&mut self, product_id: Option<u64>, code: &'static str) {
        *self.counts.entry((product_id, code)).or_default() += 1;
    }

    /// The counts to send at `now_ms`, if any and the last were sent long enough ago; they are
    /// taken, so each is sent once (a failed send loses them).
    pub fn take_due(&mut self, now_ms: u64) -> Option<EdgeRefusals> {
        if self.counts.is_empty() || now_ms.saturating_sub(self.last_sent_ms) < SEND_EVERY_MS {
            return None;
        }
        self.last_sent_ms = now_ms;
        let counts = std::mem::take(&mut self.counts)
            .into_iter()
            .take(MAX_REFUSAL_COUNTS)
            .map(|((product_id, code), count)| RefusalCount { product_id, code: code.to_owned(), count })
            .collect();
        Some(EdgeRefusals { counts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_sale_and_code_and_sends_them_at_most_every_five_seconds() {
        let mut tally = RefusalTally::default();
        assert_eq!(tally.take_due(SEND_EVERY_MS), None, "nothing to send");
        tally.note(Some(7), "SOLD_OUT");
        tally.note(Some(7), "SOLD_OUT");
        tally.note(None, "NOT_FOUND");
        let sent = tally.take_due(SEND_EVERY_MS).unwrap();
        assert_eq!(
            sent.counts,
            vec![
                RefusalCount { product_id: None, code: "NOT_FOUND".into(), count: 1 },
                RefusalCount { product_id: Some(7), code: "SOLD_OUT".into(), count: 2 },
            ]
        );
        tally.note(Some(7), "QUEUED");
        assert_eq!(tally.take_due(SEND_EVERY_MS + 1_000), None, "sent a second ago");
        let later = tally.take_due(2 * SEND_EVERY_MS).unwrap();
        assert_eq!(later.counts, vec![RefusalCount { product_id: Some(7), code: "QUEUED".into(), count: 1 }]);
    }
}
