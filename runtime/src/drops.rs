//! Reporting lost alerts the way Falco reports lost events: an internal alert, rule
//! `Falco internal: syscall event drop`, with the counts in `output_fields`, at most once every
//! 30 seconds, so that a flood of losses is visible without becoming a flood itself.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const RULE: &str = "Falco internal: syscall event drop";
pub const EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct DropReporter {
    /// Totals by cause when the last report was made.
    reported: BTreeMap<&'static str, u64>,
    last: Option<Instant>,
}

impl DropReporter {
    /// Given the loss counters now, the report to raise, if there were new losses and the last
    /// report is at least [`EVERY`] old: the output text and its fields.
    pub fn check(
        &mut self,
        totals: &[(&'static str, u64)],
        now: Instant,
    ) -> Option<(String, BTreeMap<String, Value>)> {
        let new: Vec<(&'static str, u64)> = totals
            .iter()
            .map(|&(cause, n)| {
                let before = self.reported.get(cause).copied().unwrap_or(0);
                (cause, n.saturating_sub(before))
            })
            .collect();
        let n: u64 = new.iter().map(|(_, d)| d).sum();
        if n == 0 || self.last.is_some_and(|t| now.duration_since(t) < EVERY) {
            return None;
        }
        self.last = Some(now);
        for &(cause, total) in totals {
            self.reported.insert(cause, total);
        }
        let mut fields = BTreeMap::from([("n_drops".to_string(), Value::from(n))]);
        for (cause, d) in &new {
            fields.insert(format!("n_drops_{cause}"), Value::from(*d));
        }
        let causes: Vec<String> = new
            .iter()
            .filter(|(_, d)| *d > 0)
            .map(|(c, d)| format!("{c}={d}"))
            .collect();
        let output = format!(
            "{RULE}. {n} alerts lost since the last report ({})",
            causes.join(", ")
        );
        Some((output, fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_new_losses_at_most_every_30_seconds() {
        let mut r = DropReporter::default();
        let t0 = Instant::now();
        assert!(r.check(&[("ring_buffer_full", 0)], t0).is_none());
        let (out, fields) = r
            .check(&[("ring_buffer_full", 5), ("webhook_queue_full", 2)], t0)
            .expect("first losses are reported at once");
        assert_eq!(
            out,
            "Falco internal: syscall event drop. 7 alerts lost since the last report \
             (ring_buffer_full=5, webhook_queue_full=2)"
        );
        assert_eq!(fields["n_drops"], 7);
        assert_eq!(fields["n_drops_ring_buffer_full"], 5);
        // More losses ten seconds later: held back.
        let t10 = t0 + Duration::from_secs(10);
        assert!(
            r.check(&[("ring_buffer_full", 9), ("webhook_queue_full", 2)], t10)
                .is_none()
        );
        // Thirty seconds after the last report: the losses since then, all of them.
        let t30 = t0 + Duration::from_secs(30);
        let (_, fields) = r
            .check(&[("ring_buffer_full", 9), ("webhook_queue_full", 2)], t30)
            .expect("reported again");
        assert_eq!(fields["n_drops"], 4);
        assert_eq!(fields["n_drops_webhook_queue_full"], 0);
        assert!(
            r.check(
                &[("ring_buffer_full", 9), ("webhook_queue_full", 2)],
                t30 + EVERY
            )
            .is_none(),
            "nothing new, nothing said"
        );
    }
}
