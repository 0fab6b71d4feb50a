//! Audit mode and the safety valve: which rules' refusals the kernel carries out.
//!
//! Both write the kernel's rule-off map ([`abi::MAP_RULE_OFF`]): one value with an audit flag
//! and a bit per rule. A refusal the map switches off is still judged and reported, with the
//! action it would have had (`guard.action` "would kill", "would deny"), and counted.
//!
//! The safety valve is for a rule that turns out to hit the node's own workloads: when one
//! rule kills or denies more than N distinct programs (process names) within a minute, its
//! kills and denials stop, every later refusal of it is an alert, and an internal alert says
//! so. It stays open until the policy is loaded again: an operator decides when the rule is
//! trusted again, not a timer an attacker could wait out. Off by default: a valve is a way for
//! an attacker to switch a rule off by running many programs, which is why it is opt-in.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aya::Ebpf;
use aya::maps::{Array, MapData};
use guard_ebpf::abi::{self, Action, Event, RuleOff, event_flags};

/// The internal rule of the valve's alert.
pub const RULE: &str = "guard internal: safety valve opened";

/// The window the valve counts programs in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// [`RuleOff`] as aya reads and writes it.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct PodRuleOff(RuleOff);
// SAFETY: `RuleOff` is `repr(C)`, all integers, no padding the kernel would not also see.
unsafe impl aya::Pod for PodRuleOff {}

/// Changes the value of the rule-off map of the policy pinned at `dir` with `change`, keeping
/// what it does not touch (audit mode, recording, rules an earlier agent switched off).
fn update_pinned(dir: &Path, change: impl FnOnce(&mut RuleOff) -> Result<()>) -> Result<()> {
    let data = MapData::from_pin(dir.join(abi::MAP_RULE_OFF))
        .context("cannot open the pinned rule-off map")?;
    let mut array: Array<MapData, PodRuleOff> =
        Array::try_from(aya::maps::Map::Array(data)).context("the rule-off map")?;
    let PodRuleOff(mut value) = array.get(&0, 0).context("cannot read the rule-off map")?;
    change(&mut value)?;
    array
        .set(0, PodRuleOff(value), 0)
        .context("cannot write the rule-off map")
}

/// Switches rule `rule` off in the rule-off map of the policy pinned at `dir`.
pub fn switch_off(dir: &Path, rule: u32) -> Result<()> {
    update_pinned(dir, |value| {
        let byte = value
            .rules
            .get_mut(rule as usize / 8)
            .ok_or_else(|| anyhow!("rule {rule} is past the valve's table"))?;
        *byte |= 1 << (rule % 8);
        Ok(())
    })
}

/// Says in the pinned rule-off map at `dir` whether an agent records allowed operations
/// (`guard-run load --record`).
pub fn set_record(dir: &Path, on: bool) -> Result<()> {
    update_pinned(dir, |value| {
        value.record = u32::from(on);
        Ok(())
    })
}

/// Writes the rule-off value of a policy being loaded: audit mode or not, every rule on.
pub fn write(ebpf: &mut Ebpf, audit: bool) -> Result<()> {
    let value = RuleOff {
        audit: u32::from(audit),
        record: 0,
        rules: [0; abi::RULE_OFF_BITS / 8],
    };
    let map = ebpf
        .map_mut(abi::MAP_RULE_OFF)
        .ok_or_else(|| anyhow!("the object has no `{}` map", abi::MAP_RULE_OFF))?;
    let mut array: Array<&mut MapData, PodRuleOff> =
        Array::try_from(map).context("the rule-off map")?;
    array
        .set(0, PodRuleOff(value), 0)
        .context("cannot write the rule-off map")?;
    Ok(())
}

/// A rule the valve has just switched off.
#[derive(Debug, PartialEq, Eq)]
pub struct Trip {
    pub rule: u32,
    /// The distinct programs it refused within the window, sorted.
    pub programs: Vec<String>,
}

/// The valve's bookkeeping, fed with every event.
#[derive(Debug)]
pub struct Valve {
    limit: usize,
    windows: HashMap<u32, (Instant, BTreeSet<String>)>,
    off: BTreeSet<u32>,
}

impl Valve {
    /// A valve that opens for a rule once it has refused more than `limit` programs a minute.
    pub fn new(limit: usize) -> Valve {
        Valve {
            limit,
            windows: HashMap::new(),
            off: BTreeSet::new(),
        }
    }

    /// The rules switched off so far.
    pub fn off(&self) -> &BTreeSet<u32> {
        &self.off
    }

    /// Counts an event; returns the trip when this event is one program too many.
    pub fn observe(&mut self, event: &Event, now: Instant) -> Option<Trip> {
        let carried_out = event.flags & event_flags::NOT_ENFORCED == 0
            && matches!(
                Action::from_u32(event.action),
                Some(Action::Kill | Action::Deny)
            );
        if !carried_out || self.off.contains(&event.rule) {
            return None;
        }
        let (start, programs) = self
            .windows
            .entry(event.rule)
            .or_insert_with(|| (now, BTreeSet::new()));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            programs.clear();
        }
        programs.insert(String::from_utf8_lossy(event.comm_bytes()).into_owned());
        if programs.len() <= self.limit {
            return None;
        }
        let programs = std::mem::take(programs).into_iter().collect();
        self.windows.remove(&event.rule);
        self.off.insert(event.rule);
        Some(Trip {
            rule: event.rule,
            programs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(rule: u32, comm: &str, action: Action, flags: u32) -> Event {
        // SAFETY: `Event` is plain integers and byte arrays; all zeroes is a valid value.
        let mut e: Event = unsafe { std::mem::zeroed() };
        e.rule = rule;
        e.action = action as u32;
        e.flags = flags;
        e.comm[..comm.len()].copy_from_slice(comm.as_bytes());
        e
    }

    #[test]
    fn opens_after_more_than_n_distinct_programs_in_a_minute() {
        let mut v = Valve::new(2);
        let t = Instant::now();
        let kill = |c| event(3, c, Action::Kill, 0);
        assert_eq!(v.observe(&kill("cat"), t), None);
        // The same program again is not another program.
        assert_eq!(v.observe(&kill("cat"), t), None);
        assert_eq!(v.observe(&kill("dd"), t), None);
        // Another rule counts on its own.
        assert_eq!(v.observe(&event(4, "sh", Action::Deny, 0), t), None);
        let trip = v.observe(&kill("head"), t + Duration::from_secs(59));
        assert_eq!(
            trip,
            Some(Trip {
                rule: 3,
                programs: vec!["cat".into(), "dd".into(), "head".into()]
            })
        );
        assert_eq!(v.off().iter().copied().collect::<Vec<_>>(), vec![3]);
        // Tripped once: later refusals of the rule do not trip it again.
        assert_eq!(v.observe(&kill("awk"), t + Duration::from_secs(60)), None);
    }

    #[test]
    fn a_new_minute_starts_a_new_count_and_only_carried_out_refusals_count() {
        let mut v = Valve::new(1);
        let t = Instant::now();
        assert_eq!(v.observe(&event(0, "cat", Action::Kill, 0), t), None);
        let later = t + WINDOW;
        assert_eq!(v.observe(&event(0, "dd", Action::Kill, 0), later), None);
        // Alerts and refusals not carried out (audit) are not kills.
        assert_eq!(v.observe(&event(0, "sh", Action::Alert, 0), later), None);
        let audit = event(0, "sh", Action::Kill, event_flags::NOT_ENFORCED);
        assert_eq!(v.observe(&audit, later), None);
        assert!(v.observe(&event(0, "sh", Action::Kill, 0), later).is_some());
    }
}
