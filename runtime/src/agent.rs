//! `guard-run load`: the foreground agent. Loads (or adopts, or replaces) the policy, reports
//! how it is enforced, and turns ring-buffer events into Falco-compatible alerts for its sinks
//! until SIGINT or SIGTERM; the policy stays pinned and enforced after it stops, unless told
//! otherwise. Once a second it refreshes the node context, reads the kernel's counters and
//! reports lost alerts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use guard_ebpf::abi::{self, Counter, Event};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

use crate::alert::{self, ContainerFields, Priority};
use crate::clock::BootClock;
use crate::drops::{self, DropReporter};
use crate::lifecycle::{self, How, Installed, PinTarget};
use crate::loader::{self, Options};
use crate::metrics::{self, KernelCounters, Metrics};
use crate::object::GuardObject;
use crate::pin::{self, AgentSlot, Pinned, PinnedInfo};
use crate::record::{self, Recorder};
use crate::scope::NodeContext;
use crate::sinks::{SinkOptions, Sinks};
use crate::users::UserNames;
use crate::valve::{self, Valve};

/// The agent's own options (what the loader needs is in [`Options`]).
#[derive(Clone, Debug, Default)]
pub struct AgentOptions {
    pub sinks: SinkOptions,
    /// `ADDR:PORT` for the Prometheus endpoint.
    pub metrics_addr: Option<String>,
    /// The policy's name and pin root.
    pub target: PinTarget,
    /// On SIGINT/SIGTERM, unload the policy (enforcement ends with the agent). By default it
    /// stays pinned and enforced, for the next agent to adopt.
    pub unpin_on_exit: bool,
    /// The safety valve's limit: distinct programs a rule may kill or deny per minute.
    pub safety_valve: Option<usize>,
    /// Record every covered operation, allowed or not, to this file (`--record`).
    pub record: Option<PathBuf>,
}

pub fn run_load(path: &Path, agent_opts: AgentOptions, opts: Options) -> Result<()> {
    let obj = GuardObject::open(path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    // Handled from here on: a SIGTERM while the policy is loaded and pinned must not kill the
    // agent midway; the event loop sees it at once and stops cleanly.
    let signals = {
        let _rt = rt.enter();
        Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        }
    };
    let Installed {
        mut pinned,
        ring,
        node,
        how,
    } = lifecycle::install(path, &obj, &agent_opts.target, &opts)?;
    let info = pinned.info.clone();
    report(&info, &how, &pinned);
    if let Some(n) = agent_opts.safety_valve {
        crate::report!(
            "guard-run:   safety valve: a rule that kills or denies more than {n} distinct programs within a minute stops acting until the policy is loaded again"
        );
    }
    // Drops the kernel counted since the last reader looked happened while nobody read.
    let lost_unread = pinned
        .counter(Counter::EventsDropped)
        .saturating_sub(pinned.agent_slot(AgentSlot::DroppedSeen));
    // Also says "not recording" to the kernel: a recording agent that died left the bit on.
    let recorder = start_recording(&agent_opts, &info, &pinned)?;
    let metrics = Arc::new(Metrics::default());
    let sinks = Sinks::new(&agent_opts.sinks, metrics.clone())?;
    let mut agent = Agent {
        printer: Printer::new(info.meta.rules.clone(), sinks, metrics.clone())?,
        pinned: &mut pinned,
        node,
        metrics: metrics.clone(),
        drops: DropReporter::default(),
        read: 0,
        valve: agent_opts.safety_valve.map(Valve::new),
        recorder,
    };
    if let How::Replaced { old, drained, .. } = &how
        && !drained.is_empty()
    {
        let rules = old
            .as_ref()
            .map(|o| o.meta.rules.clone())
            .unwrap_or_default();
        let current = std::mem::replace(&mut agent.printer.rules, rules);
        for e in drained {
            agent.on_event(e);
        }
        agent.printer.rules = current;
        crate::report!(
            "guard-run:   {} events the previous version raised while no agent read them: alerted now",
            drained.len()
        );
    }
    let mut ring = ring;
    if matches!(how, How::Adopted) {
        let mut waited = 0u64;
        while let Some(item) = ring.next() {
            agent.on_event(&item);
            waited += 1;
        }
        crate::report!(
            "guard-run:   while no agent read the events: {waited} waited in the ring buffer \
             (alerted now), {lost_unread} were lost (the ring buffer was full)"
        );
    }
    agent.maintain();
    let stop = rt.block_on(async {
        if let Some(addr) = &agent_opts.metrics_addr {
            let listener = metrics::bind(addr).await?;
            crate::report!("guard-run:   metrics at http://{addr}/metrics");
            tokio::spawn(metrics::serve(listener, metrics.clone()));
        }
        event_loop(ring, signals, &mut agent).await
    })?;
    if stop == Stop::Signal {
        agent.maintain();
    }
    let Agent {
        printer, recorder, ..
    } = agent;
    printer.sinks.close();
    if let Some(mut r) = recorder {
        r.flush();
        if pinned.still_pinned()
            && let Err(e) = valve::set_record(&pinned.dir, false)
        {
            crate::report!("guard-run: warning: cannot tell the kernel recording ended: {e:#}");
        }
        crate::report!(
            "guard-run: recorded {} operations to `{}`: {} distinct ones written (the same operation by the same kind of process once), {} of them with part of their process context missing",
            r.seen,
            r.path().display(),
            r.written,
            r.incomplete
        );
    }
    crate::report!(
        "guard-run: stopping; {} refusals, {} would-kill and {} would-deny not carried out, {} events dropped, {} kills failed, {} paths judged truncated, {} execs judged after the fact",
        pinned.counter(Counter::Refused),
        pinned.counter(Counter::WouldKill),
        pinned.counter(Counter::WouldDeny),
        pinned.counter(Counter::EventsDropped),
        pinned.counter(Counter::KillFailed),
        pinned.counter(Counter::PathTruncated),
        pinned.counter(Counter::ExecJudgedAfter),
    );
    let dir = pinned.dir.clone();
    match stop {
        Stop::Gone => crate::report!(
            "guard-run: the policy `{}` is no longer pinned at `{}` (unloaded, or replaced by \
             another guard-run): nothing left to read",
            info.name,
            dir.display()
        ),
        Stop::Signal if agent_opts.unpin_on_exit => {
            unpin_own(&agent_opts.target.root, &pinned)?;
            crate::report!(
                "guard-run: enforcement of `{}` ended (--unpin-on-exit)",
                info.name
            );
        }
        Stop::Signal => crate::report!(
            "guard-run: enforcement of `{}` continues (pinned at `{}`); `guard-run load` \
             with the same object adopts it, `guard-run unload {}` ends it",
            info.name,
            dir.display(),
            info.name
        ),
    }
    Ok(())
}

/// Opens the record file and tells the kernel to report allowed operations too, or tells it
/// not to.
fn start_recording(
    opts: &AgentOptions,
    info: &PinnedInfo,
    pinned: &Pinned,
) -> Result<Option<Recorder>> {
    let recorder = match &opts.record {
        Some(path) => Some(Recorder::create(path, info.backend, &info.meta.source)?),
        None => None,
    };
    valve::set_record(&pinned.dir, recorder.is_some())?;
    if let Some(r) = &recorder {
        crate::report!(
            "guard-run:   recording every open and exec of a path the policy's patterns match, allowed or not, to `{}`",
            r.path().display()
        );
    }
    Ok(recorder)
}

/// Unloads the policy this agent read, unless another load replaced it meanwhile.
fn unpin_own(root: &Path, pinned: &Pinned) -> Result<()> {
    let _root = pin::Root::lock(root)?;
    if pinned.still_pinned() {
        pin::remove(&pinned.dir)?;
    }
    Ok(())
}

/// The load report: how the policy came to be enforced, each rule's effect, the node.
fn report(info: &PinnedInfo, how: &How, pinned: &Pinned) {
    let (how_text, seeded) = match how {
        How::Fresh { seeded } => (String::new(), Some(*seeded)),
        How::Adopted => (
            format!(
                " (adopted: pinned at `{}` by {}, {} s ago; enforcement never stopped)",
                pinned.dir.display(),
                info.loaded_by,
                pin::now_secs().saturating_sub(info.loaded_at)
            ),
            None,
        ),
        How::Replaced { seeded, old, .. } => (
            format!(
                " (replacing {}; both enforced until the old one's links were removed)",
                old.as_ref()
                    .map_or("an unreadable pinned version".to_string(), |o| format!(
                        "the version of `{}` loaded by {}",
                        o.meta.source, o.loaded_by
                    ))
            ),
            Some(*seeded),
        ),
    };
    let seeded = seeded.map_or(String::new(), |n| {
        format!("; {n} running tasks given their identities")
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "guard-run: enforcing `{}` ({} rules) with the {} backend{seeded}{how_text}",
        info.meta.source,
        info.meta.rules.len(),
        crate::backend::describe(info.backend),
    );
    let _ = writeln!(
        out,
        "guard-run:   identity store: {}",
        crate::store::describe(info.store)
    );
    let _ = writeln!(
        out,
        "guard-run:   policy `{}` pinned at `{}`",
        info.name,
        pinned.dir.display()
    );
    if info.audit {
        let _ = writeln!(
            out,
            "guard-run:   AUDIT MODE: nothing is killed or denied; each alert says what would have happened"
        );
    }
    // Every rule and what it does here; a generated policy of thousands is summarised.
    const SHOWN: usize = 20;
    for r in info.meta.rules.iter().take(SHOWN) {
        let mut effective = crate::backend::effective(r, info.backend, info.deny_as_kill);
        if info.audit && matches!(r.action, abi::Action::Kill | abi::Action::Deny) {
            effective = format!("audit: alert only (would {effective})");
        }
        let _ = writeln!(
            out,
            "guard-run:   rule {} `{}` (line {}, {}): {effective}",
            r.id, r.name, r.line, r.operation
        );
    }
    if info.meta.rules.len() > SHOWN {
        let _ = writeln!(
            out,
            "guard-run:   ... and {} more rules",
            info.meta.rules.len() - SHOWN
        );
    }
    for (name, uid) in &info.users {
        let _ = writeln!(out, "guard-run:   user `{name}` is uid {uid} on this node");
    }
    // One write: whoever reads the report (an operator's log, a test) gets it whole.
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), out.as_bytes());
}

struct Printer {
    clock: BootClock,
    users: UserNames,
    rules: Vec<guard_ebpf::abi::RuleMeta>,
    sinks: Sinks,
    metrics: Arc<Metrics>,
}

impl Printer {
    fn new(
        rules: Vec<guard_ebpf::abi::RuleMeta>,
        sinks: Sinks,
        metrics: Arc<Metrics>,
    ) -> Result<Printer> {
        Ok(Printer {
            clock: BootClock::now().context("cannot read the clocks")?,
            users: UserNames::new(),
            rules,
            sinks,
            metrics,
        })
    }

    fn print(&mut self, event: &Event, container: impl FnOnce(u64) -> ContainerFields) {
        let Some(rule) = self.rules.get(event.rule as usize) else {
            crate::report!(
                "guard-run: warning: event names unknown rule {}",
                event.rule
            );
            return;
        };
        let epoch = self.clock.to_epoch_ns(event.boot_ns);
        let users = &mut self.users;
        let container = container(event.cgroup_id);
        let rendered = alert::render_event(
            event,
            rule,
            epoch,
            self.sinks.hostname(),
            |uid| users.name(uid).map(str::to_owned),
            &container,
        );
        self.metrics
            .count_alert(&rule.name, alert::action_word(event));
        self.sinks.emit(&rendered);
    }
}

/// The running agent: the pinned policy it reads and where its alerts go.
struct Agent<'a> {
    printer: Printer,
    pinned: &'a mut Pinned,
    node: NodeContext,
    metrics: Arc<Metrics>,
    drops: DropReporter,
    /// Events this agent read.
    read: u64,
    valve: Option<Valve>,
    recorder: Option<Recorder>,
}

impl Agent<'_> {
    fn on_event(&mut self, bytes: &[u8]) {
        self.read += 1;
        let Some(event) = Event::from_bytes(bytes) else {
            crate::report!(
                "guard-run: warning: dropped a malformed event of {} bytes",
                bytes.len()
            );
            return;
        };
        self.record(&event);
        if event.action == abi::Action::Allow as u32 {
            // Reported only for the record: not an alert.
            return;
        }
        let node = &mut self.node;
        self.printer
            .print(&event, |cgroup| node.container_fields(cgroup));
        let trip = match &mut self.valve {
            Some(valve) => valve.observe(&event, Instant::now()),
            None => None,
        };
        if let Some(trip) = trip {
            self.open_valve(trip);
        }
    }

    fn record(&mut self, event: &Event) {
        let Some(recorder) = &mut self.recorder else {
            return;
        };
        let rule = self
            .printer
            .rules
            .get(event.rule as usize)
            .map(|r| r.name.as_str());
        let epoch = self.printer.clock.to_epoch_ns(event.boot_ns);
        let users = &mut self.printer.users;
        let mut user_name = |uid| users.name(uid).map(str::to_owned);
        recorder.record(
            event,
            rule,
            epoch,
            record::Node {
                containers: &self.node.containers,
                user_name: &mut user_name,
            },
        );
    }

    /// Switches a rule's kills and denials off in the kernel and says so loudly.
    fn open_valve(&mut self, trip: valve::Trip) {
        let name = self
            .printer
            .rules
            .get(trip.rule as usize)
            .map_or("?", |r| r.name.as_str())
            .to_owned();
        let output = match valve::switch_off(&self.pinned.dir, trip.rule) {
            Ok(()) => format!(
                "{}. Rule `{name}` killed or denied {} distinct programs within a minute ({}); its kills and denials are off until the policy is loaded again",
                valve::RULE,
                trip.programs.len(),
                trip.programs.join(", ")
            ),
            Err(e) => format!(
                "{}. Rule `{name}` killed or denied {} distinct programs within a minute, and the valve could not switch it off ({e:#}): it still acts",
                valve::RULE,
                trip.programs.len()
            ),
        };
        let fields = std::collections::BTreeMap::from([
            ("guard.rule".to_string(), serde_json::Value::from(name)),
            (
                "guard.programs".to_string(),
                serde_json::Value::from(trip.programs),
            ),
        ]);
        self.raise_internal(valve::RULE, &output, &fields);
    }

    /// An internal alert of guard-run's own (lost alerts, the safety valve): on stderr, and
    /// at Critical on every sink.
    fn raise_internal(
        &mut self,
        rule: &str,
        output: &str,
        fields: &std::collections::BTreeMap<String, serde_json::Value>,
    ) {
        crate::report!("guard-run: WARNING: {output}");
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.printer
            .sinks
            .internal(rule, output, fields, Priority::Critical, epoch);
    }

    /// Once a second: containers that came and went, and the scopes' cgroups with them; the
    /// kernel's counters; a report of lost alerts, if any (at most every 30 s); the reader's
    /// bookkeeping for the next agent.
    fn maintain(&mut self) {
        self.node.refresh();
        if let Some(r) = &mut self.recorder {
            r.flush();
        }
        if let Err(e) = loader::sync_table(&mut self.pinned.cgroups, &self.node.view.bits) {
            crate::report!("guard-run: warning: cannot refresh the policy's scopes: {e:#}");
        }
        let p = &mut *self.pinned;
        let dropped = p.counter(Counter::EventsDropped);
        self.metrics.set_kernel(KernelCounters {
            refused: p.counter(Counter::Refused),
            ring_full: dropped,
            kill_failed: p.counter(Counter::KillFailed),
            paths_truncated: p.counter(Counter::PathTruncated),
            would_kill: p.counter(Counter::WouldKill),
            would_deny: p.counter(Counter::WouldDeny),
        });
        let total = p.agent_slot(AgentSlot::EventsRead) + std::mem::take(&mut self.read);
        p.set_agent(AgentSlot::EventsRead, total);
        p.set_agent(AgentSlot::DroppedSeen, dropped);
        p.set_agent(AgentSlot::LastSeen, pin::now_secs());
        p.set_agent(AgentSlot::ReaderPid, u64::from(std::process::id()));
        if let Some((output, fields)) = self.drops.check(&self.metrics.drops(), Instant::now()) {
            self.raise_internal(drops::RULE, &output, &fields);
        }
    }
}

/// SIGINT and SIGTERM stop the agent, SIGHUP reopens the alert file.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// Why the event loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGINT or SIGTERM.
    Signal,
    /// The policy's name no longer leads to what this agent reads.
    Gone,
}

/// Reads events until SIGINT/SIGTERM, or until the policy is unloaded or replaced elsewhere,
/// refreshing the node context once a second.
async fn event_loop(
    ring: RingBuf<MapData>,
    mut signals: Signals,
    agent: &mut Agent<'_>,
) -> Result<Stop> {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    // SAFETY: the RingBuf owns the map's file descriptor for as long as the AsyncFd lives.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("cannot watch the event ring buffer")?;
    loop {
        tokio::select! {
            _ = signals.int.recv() => return Ok(Stop::Signal),
            _ = signals.term.recv() => return Ok(Stop::Signal),
            _ = tick.tick() => {
                if !agent.pinned.still_pinned() {
                    // What the old version raised before it was detached is still ours.
                    let ring = fd.get_mut();
                    while let Some(item) = ring.next() {
                        agent.on_event(&item);
                    }
                    return Ok(Stop::Gone);
                }
                agent.maintain();
            }
            _ = signals.hup.recv() => agent.printer.sinks.reopen(),
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                let ring = guard.get_inner_mut();
                while let Some(item) = ring.next() {
                    agent.on_event(&item);
                }
                guard.clear_ready();
            }
        }
    }
}
