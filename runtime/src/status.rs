//! `guard-run status` and `guard-run unload`: the pinned policies as an operator sees them,
//! read from bpffs alone (no object file, no running agent needed).

use std::path::Path;

use anyhow::{Result, bail};
use guard_ebpf::abi::{Counter, RULE_COUNTER_KINDS, RuleCounter};
use serde_json::{Value, json};

use crate::pin::{self, AgentSlot, Counters};

/// One pinned policy as `status --json` prints it.
fn policy_json(root: &Path, name: &str) -> Value {
    let dir = root.join(name);
    let info = match pin::read_info(&dir) {
        Ok(i) => i,
        Err(e) => return json!({ "name": name, "dir": dir, "error": format!("{e:#}") }),
    };
    let c = match Counters::open(&dir) {
        Ok(c) => c,
        Err(e) => return json!({ "name": name, "dir": dir, "error": format!("{e:#}") }),
    };
    let k = |x: Counter| pin::sum(&c.counters, x as u32);
    let a = |s: AgentSlot| pin::agent_slot(&c.agent, s);
    let dropped = k(Counter::EventsDropped);
    let rules: Vec<Value> = info
        .meta
        .rules
        .iter()
        .map(|r| {
            let n = |kind: RuleCounter| {
                pin::sum(&c.rule_counts, r.id * RULE_COUNTER_KINDS + kind as u32)
            };
            json!({
                "id": r.id,
                "name": r.name,
                "operation": r.operation,
                "action": r.action.as_str(),
                "effective": crate::backend::effective(r, info.backend, info.deny_as_kill),
                "matched": n(RuleCounter::Matched),
                "killed": n(RuleCounter::Killed),
                "denied": n(RuleCounter::Denied),
                "alerted": n(RuleCounter::Alerted),
            })
        })
        .collect();
    let reader = pin::has_reader(&dir);
    json!({
        "name": name,
        "dir": dir,
        "source": info.meta.source,
        "object_path": info.object_path,
        "object_sha3": info.object_sha3,
        "backend": info.backend.as_str(),
        "identity_store": info.store.as_str(),
        "mode": if info.audit { "audit" } else { "enforce" },
        "loaded_at": info.loaded_at,
        "loaded_by": info.loaded_by,
        "agent": {
            "reading": reader,
            "last_pid": a(AgentSlot::ReaderPid),
            "last_seen": a(AgentSlot::LastSeen),
            "events_read": a(AgentSlot::EventsRead),
        },
        "counters": {
            "refused": k(Counter::Refused),
            "kill_failed": k(Counter::KillFailed),
            "paths_truncated": k(Counter::PathTruncated),
            "execs_judged_after": k(Counter::ExecJudgedAfter),
            // Audit mode: what enforcing would have done.
            "would_kill": k(Counter::WouldKill),
            "would_deny": k(Counter::WouldDeny),
        },
        "drops": {
            "ring_buffer_full": dropped,
            // Counted by the kernel since a reader last looked; when no agent reads, that is
            // what was lost while nobody read.
            "since_last_read": dropped.saturating_sub(a(AgentSlot::DroppedSeen)),
        },
        "rules": rules,
    })
}

pub fn status(root: &Path, as_json: bool) -> Result<()> {
    let names = pin::Root::names(root);
    let policies: Vec<Value> = names.iter().map(|n| policy_json(root, n)).collect();
    if as_json {
        let doc = json!({ "pin_root": root, "policies": policies });
        crate::say!("{doc}");
        return Ok(());
    }
    if policies.is_empty() {
        crate::say!("no policy is pinned under {}", root.display());
        return Ok(());
    }
    for p in &policies {
        print_policy(p);
    }
    Ok(())
}

fn print_policy(p: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    crate::say!("policy {} ({})", s(&p["name"]), s(&p["dir"]));
    if let Some(e) = p["error"].as_str() {
        crate::say!("  unusable: {e}");
        return;
    }
    let age = pin::now_secs().saturating_sub(n(&p["loaded_at"]));
    crate::say!(
        "  source {}, object {} (sha3-256 {}), backend {}, identity store {}",
        s(&p["source"]),
        s(&p["object_path"]),
        &s(&p["object_sha3"]).get(..16).unwrap_or(""),
        s(&p["backend"]),
        s(&p["identity_store"])
    );
    crate::say!("  loaded {age} s ago by {}", s(&p["loaded_by"]));
    if p["mode"] == "audit" {
        crate::say!(
            "  mode: AUDIT: nothing is killed or denied ({} would-kill, {} would-deny so far)",
            n(&p["counters"]["would_kill"]),
            n(&p["counters"]["would_deny"])
        );
    }
    let agent = &p["agent"];
    if agent["reading"].as_bool() == Some(true) {
        crate::say!("  agent: reading (pid {})", n(&agent["last_pid"]));
    } else {
        crate::say!(
            "  agent: none reading; events wait in the ring buffer until it is full, then are \
             lost (last reader: pid {}, {} s ago)",
            n(&agent["last_pid"]),
            pin::now_secs().saturating_sub(n(&agent["last_seen"]))
        );
    }
    let c = &p["counters"];
    crate::say!(
        "  kernel: {} refusals, {} kills failed, {} paths judged truncated, {} execs judged after the fact",
        n(&c["refused"]),
        n(&c["kill_failed"]),
        n(&c["paths_truncated"]),
        n(&c["execs_judged_after"])
    );
    let d = &p["drops"];
    crate::say!(
        "  drops: {} events lost (ring buffer full), {} of them since a reader last looked",
        n(&d["ring_buffer_full"]),
        n(&d["since_last_read"])
    );
    crate::say!(
        "  {:>5}  {:<32} {:<6} {:>10} {:>8} {:>8} {:>8}",
        "rule",
        "name",
        "action",
        "matched",
        "killed",
        "denied",
        "alerted"
    );
    for r in p["rules"].as_array().into_iter().flatten() {
        crate::say!(
            "  {:>5}  {:<32} {:<6} {:>10} {:>8} {:>8} {:>8}",
            n(&r["id"]),
            s(&r["name"]),
            s(&r["action"]),
            n(&r["matched"]),
            n(&r["killed"]),
            n(&r["denied"]),
            n(&r["alerted"])
        );
    }
}

/// Removes the named policies (every policy with `all`): their links go first, and with them
/// enforcement. An agent still reading one of them notices and stops.
pub fn unload(root: &Path, names: &[String], all: bool) -> Result<()> {
    if !root.exists() {
        bail!("no policy is pinned: `{}` does not exist", root.display());
    }
    if names.is_empty() && !all {
        bail!("name the policies to unload, or pass --all");
    }
    let root_lock = pin::Root::lock(root)?;
    let pinned = pin::Root::names(root);
    let chosen: Vec<String> = if all { pinned.clone() } else { names.to_vec() };
    for name in &chosen {
        pin::check_name(name)?;
        if !pinned.contains(name) {
            bail!(
                "no policy `{name}` is pinned under {} (pinned: {})",
                root.display(),
                if pinned.is_empty() {
                    "none".to_string()
                } else {
                    pinned.join(", ")
                }
            );
        }
    }
    for name in &chosen {
        let dir = root_lock.policy(name);
        let reader = pin::has_reader(&dir);
        pin::remove(&dir)?;
        root_lock.clean_leftovers(name);
        crate::report!(
            "guard-run: unloaded `{name}`: its programs are detached, enforcement ended{}",
            if reader {
                "; the agent reading it stops within a second"
            } else {
                ""
            }
        );
    }
    if all && chosen.is_empty() {
        crate::report!("guard-run: no policy is pinned under {}", root.display());
    }
    Ok(())
}
