//! The alert fields a case can check, from a simulated event: the values `guard-run` renders
//! for the same event ([`guard_ebpf::fields`], which both use), as text.

use std::collections::BTreeMap;

use guard_ebpf::abi::{Event, RuleMeta};
use serde_json::Value;

pub use guard_ebpf::fields::action_word;

/// The rendered fields of `event` decided by `rule`; `user` names the event's uid. Fields that
/// do not apply to the event are left out.
pub fn fields(event: &Event, rule: &RuleMeta, user: Option<&str>) -> BTreeMap<String, String> {
    let mut f: BTreeMap<String, String> = guard_ebpf::fields::event_fields(event, rule)
        .into_iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::Null => return None,
                Value::String(s) => s,
                other => other.to_string(),
            };
            Some((k.to_string(), text))
        })
        .collect();
    if let Some(u) = user {
        f.insert("user.name".into(), u.to_string());
    }
    f
}
