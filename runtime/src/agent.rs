//! `guard-run load`: the foreground agent. Loads the policy, reports how it is enforced, and
//! turns ring-buffer events into Falco-compatible alerts for its sinks until SIGINT or SIGTERM.
//! Once a second it refreshes the node context, reads the kernel's counters and reports lost
//! alerts.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use guard_ebpf::abi::{Counter, Event};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

use crate::alert::{self, ContainerFields, Priority};
use crate::clock::BootClock;
use crate::drops::{self, DropReporter};
use crate::loader::{self, Options};
use crate::metrics::{self, KernelCounters, Metrics};
use crate::object::GuardObject;
use crate::sinks::{SinkOptions, Sinks};
use crate::users::UserNames;
use crate::valve::{self, Valve};

/// The agent's own options (what the loader needs is in [`Options`]).
#[derive(Clone, Debug, Default)]
pub struct AgentOptions {
    pub sinks: SinkOptions,
    /// `ADDR:PORT` for the Prometheus endpoint.
    pub metrics_addr: Option<String>,
    /// The safety valve's limit: distinct programs a rule may kill or deny per minute.
    pub safety_valve: Option<usize>,
}

pub fn run_load(path: &Path, agent_opts: AgentOptions, opts: Options) -> Result<()> {
    let deny_as_kill = opts.deny_as_kill;
    let audit = opts.audit;
    let obj = GuardObject::open(path)?;
    let mut loaded = loader::load(&obj, &opts)?;
    eprintln!(
        "guard-run: enforcing `{}` ({} rules) with the {} backend; {} running tasks given their identities",
        obj.meta.source,
        obj.meta.rules.len(),
        crate::backend::describe(loaded.backend),
        loaded.seeded
    );
    // Every rule and what it does here; a generated policy of thousands is summarised.
    const SHOWN: usize = 20;
    if audit {
        eprintln!(
            "guard-run:   AUDIT MODE: nothing is killed or denied; each alert says what would have happened"
        );
    }
    if let Some(n) = agent_opts.safety_valve {
        eprintln!(
            "guard-run:   safety valve: a rule that kills or denies more than {n} distinct programs within a minute stops acting until the policy is loaded again"
        );
    }
    for r in obj.meta.rules.iter().take(SHOWN) {
        let mut effective = crate::backend::effective(r, loaded.backend, deny_as_kill);
        if audit
            && matches!(
                r.action,
                guard_ebpf::abi::Action::Kill | guard_ebpf::abi::Action::Deny
            )
        {
            effective = format!("audit: alert only (would {effective})");
        }
        eprintln!(
            "guard-run:   rule {} `{}` (line {}, {}): {effective}",
            r.id, r.name, r.line, r.operation
        );
    }
    if obj.meta.rules.len() > SHOWN {
        eprintln!(
            "guard-run:   ... and {} more rules",
            obj.meta.rules.len() - SHOWN
        );
    }
    for (name, uid) in &loaded.users {
        eprintln!("guard-run:   user `{name}` is uid {uid} on this node");
    }
    let in_containers = loaded.node.containers.all().len();
    eprintln!(
        "guard-run:   {in_containers} containers known from the runtimes' state; {} cgroups in the policy's scopes",
        loaded.node.view.bits.len()
    );
    let ring = loaded.take_events()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    let metrics = Arc::new(Metrics::default());
    let sinks = Sinks::new(&agent_opts.sinks, metrics.clone())?;
    let mut agent = Agent {
        printer: Printer::new(obj.meta.rules.clone(), sinks, metrics.clone())?,
        loaded: &mut loaded,
        metrics: metrics.clone(),
        drops: DropReporter::default(),
        valve: agent_opts.safety_valve.map(Valve::new),
        audit,
    };
    rt.block_on(async {
        if let Some(addr) = &agent_opts.metrics_addr {
            let listener = metrics::bind(addr).await?;
            eprintln!("guard-run:   metrics at http://{addr}/metrics");
            tokio::spawn(metrics::serve(listener, metrics.clone()));
        }
        event_loop(ring, &mut agent).await
    })?;
    agent.maintain();
    let Agent { printer, .. } = agent;
    printer.sinks.close();
    eprintln!(
        "guard-run: stopping; {} refusals, {} would-kill and {} would-deny not carried out, {} events dropped, {} kills failed, {} paths judged truncated, {} execs judged after the fact",
        loaded.counter(Counter::Refused),
        loaded.counter(Counter::WouldKill),
        loaded.counter(Counter::WouldDeny),
        loaded.counter(Counter::EventsDropped),
        loaded.counter(Counter::KillFailed),
        loaded.counter(Counter::PathTruncated),
        loaded.counter(Counter::ExecJudgedAfter),
    );
    // Dropping `loaded` detaches every program and frees the maps.
    drop(loaded);
    Ok(())
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

    fn print(&mut self, bytes: &[u8], container: impl FnOnce(u64) -> ContainerFields) {
        let Some(event) = Event::from_bytes(bytes) else {
            eprintln!(
                "guard-run: warning: dropped a malformed event of {} bytes",
                bytes.len()
            );
            return;
        };
        let Some(rule) = self.rules.get(event.rule as usize) else {
            eprintln!(
                "guard-run: warning: event names unknown rule {}",
                event.rule
            );
            return;
        };
        let epoch = self.clock.to_epoch_ns(event.boot_ns);
        let users = &mut self.users;
        let container = container(event.cgroup_id);
        let rendered = alert::render_event(
            &event,
            rule,
            epoch,
            self.sinks.hostname(),
            |uid| users.name(uid).map(str::to_owned),
            &container,
        );
        self.metrics
            .count_alert(&rule.name, alert::action_word(&event));
        self.sinks.emit(&rendered);
    }
}

/// The running agent: the loaded policy and where its alerts go.
struct Agent<'a> {
    printer: Printer,
    loaded: &'a mut loader::Loaded,
    metrics: Arc<Metrics>,
    drops: DropReporter,
    valve: Option<Valve>,
    audit: bool,
}

impl Agent<'_> {
    fn on_event(&mut self, bytes: &[u8]) {
        let node = &mut self.loaded.node;
        self.printer
            .print(bytes, |cgroup| node.container_fields(cgroup));
        let trip = match (&mut self.valve, Event::from_bytes(bytes)) {
            (Some(valve), Some(event)) => valve.observe(&event, Instant::now()),
            _ => None,
        };
        if let Some(trip) = trip {
            self.open_valve(trip);
        }
    }

    /// Switches a rule's kills and denials off in the kernel and says so loudly.
    fn open_valve(&mut self, trip: valve::Trip) {
        let Some(valve) = &self.valve else { return };
        let name = self
            .printer
            .rules
            .get(trip.rule as usize)
            .map_or("?", |r| r.name.as_str())
            .to_owned();
        let written = valve::write(&mut self.loaded.ebpf, self.audit, valve.off());
        let output = match &written {
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
        eprintln!("guard-run: WARNING: {output}");
        let fields = std::collections::BTreeMap::from([
            ("guard.rule".to_string(), serde_json::Value::from(name)),
            (
                "guard.programs".to_string(),
                serde_json::Value::from(trip.programs),
            ),
        ]);
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.printer
            .sinks
            .internal(valve::RULE, &output, &fields, Priority::Critical, epoch);
    }

    /// Once a second: containers that came and went, and the scopes' cgroups with them; the
    /// kernel's counters; a report of lost alerts, if any (at most every 30 s).
    fn maintain(&mut self) {
        self.loaded.node.refresh();
        if let Err(e) = loader::sync_scopes(&mut self.loaded.ebpf, &self.loaded.node.view.bits) {
            eprintln!("guard-run: warning: cannot refresh the policy's scopes: {e:#}");
        }
        let l = &self.loaded;
        self.metrics.set_kernel(KernelCounters {
            opens: l.counter(Counter::Opens),
            refused: l.counter(Counter::Refused),
            ring_full: l.counter(Counter::EventsDropped),
            kill_failed: l.counter(Counter::KillFailed),
            paths_truncated: l.counter(Counter::PathTruncated),
        });
        if let Some((output, fields)) = self.drops.check(&self.metrics.drops(), Instant::now()) {
            eprintln!("guard-run: WARNING: {output}");
            let epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            self.printer
                .sinks
                .internal(drops::RULE, &output, &fields, Priority::Critical, epoch);
        }
    }
}

/// Reads events until SIGINT/SIGTERM, refreshing the node context once a second.
async fn event_loop(ring: RingBuf<MapData>, agent: &mut Agent<'_>) -> Result<()> {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    // SAFETY: the RingBuf owns the map's file descriptor for as long as the AsyncFd lives.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
        .context("cannot watch the event ring buffer")?;
    loop {
        tokio::select! {
            _ = sigint.recv() => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
            _ = tick.tick() => agent.maintain(),
            _ = sighup.recv() => agent.printer.sinks.reopen(),
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
