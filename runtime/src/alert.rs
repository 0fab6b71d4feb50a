//! Falco-compatible rendering of guard's alerts (see the Falco output contract).
//!
//! An alert is rendered twice from one set of field values: as Falco's text line and as
//! Falco's JSON object, so that falcosidekick and log pipelines built for Falco take guard's
//! alerts unchanged.

use std::collections::{BTreeMap, BTreeSet};

use guard_ebpf::abi::{Event, RuleMeta, event_flags};
pub use guard_ebpf::fields::action_word;
use serde::Serialize;
use serde_json::Value;

use crate::clock::{epoch_secs, local_utc_offset, rfc3339_utc, time_of_day};

/// How Falco renders a value it could not resolve.
pub const NA: &str = "<NA>";

/// Falco appends this to every syscall alert's text. Rendered from the field set, so the
/// container fields show up here once guard resolves them.
const SUFFIX_TEMPLATE: &str = " container_id=%container.id container_name=%container.name \
     container_image_repository=%container.image.repository \
     container_image_tag=%container.image.tag k8s_pod_name=%k8s.pod.name \
     k8s_ns_name=%k8s.ns.name";

/// Fields in every event's `output_fields`, whatever the rule's template references.
const ALWAYS_IN_OUTPUT_FIELDS: [&str; 7] = [
    "evt.time",
    "proc.name",
    "proc.cmdline",
    "proc.pid",
    "user.name",
    "fd.name",
    "guard.action",
];

/// Falco's priorities, the syslog levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Informational = 6,
    Debug = 7,
}

/// In discriminant order, so that `as_str` can index it.
const PRIORITY_NAMES: [(Priority, &str); 8] = [
    (Priority::Emergency, "Emergency"),
    (Priority::Alert, "Alert"),
    (Priority::Critical, "Critical"),
    (Priority::Error, "Error"),
    (Priority::Warning, "Warning"),
    (Priority::Notice, "Notice"),
    (Priority::Informational, "Informational"),
    (Priority::Debug, "Debug"),
];

impl Priority {
    /// Case-insensitive, accepting `info` for `Informational`, as Falco does.
    pub fn parse(s: &str) -> Option<Priority> {
        if s.eq_ignore_ascii_case("info") {
            return Some(Priority::Informational);
        }
        PRIORITY_NAMES
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(s))
            .map(|&(p, _)| p)
    }

    pub fn as_str(self) -> &'static str {
        PRIORITY_NAMES[self as usize].1
    }
}

/// One event rendered both ways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedAlert {
    /// Falco's text line (no trailing newline).
    pub text: String,
    /// Falco's JSON object on one line (no trailing newline).
    pub json: String,
}

/// The container and pod of an event's process, as the agent resolved them from its cgroup.
/// `id` is `host` for a process in no container; `None` fields render as `<NA>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerFields {
    pub id: Option<String>,
    pub name: Option<String>,
    pub image_repository: Option<String>,
    pub image_tag: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
}

/// The value of every field guard can supply for `event`, by Falco field name: the event's
/// and rule's own ([`guard_ebpf::fields`], which `guardc test` checks cases against), the time,
/// the user's name and the container. Unresolvable fields are present with `null` so that a
/// template naming them renders `<NA>`.
pub fn event_fields(
    event: &Event,
    rule: &RuleMeta,
    epoch_ns: u64,
    user_name: Option<String>,
    container: &ContainerFields,
) -> BTreeMap<&'static str, Value> {
    let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::from);
    let mut fields = guard_ebpf::fields::event_fields(event, rule);
    fields.extend([
        ("evt.time", Value::from(epoch_ns)),
        ("user.name", user_name.map_or(Value::Null, Value::from)),
        ("container.id", opt(&container.id)),
        ("container.name", opt(&container.name)),
        (
            "container.image.repository",
            opt(&container.image_repository),
        ),
        ("container.image.tag", opt(&container.image_tag)),
        ("k8s.pod.name", opt(&container.pod_name)),
        ("k8s.ns.name", opt(&container.pod_namespace)),
    ]);
    fields
}

/// Renders `event` for `rule` as Falco would: the text line with local time of day, the JSON
/// object with UTC time. `user_name` resolves the event's uid.
pub fn render_event(
    event: &Event,
    rule: &RuleMeta,
    epoch_ns: u64,
    hostname: &str,
    user_name: impl FnOnce(u32) -> Option<String>,
    container: &ContainerFields,
) -> RenderedAlert {
    let offset = local_utc_offset(epoch_secs(epoch_ns));
    render_event_at_offset(
        event, rule, epoch_ns, hostname, user_name, container, offset,
    )
}

/// [`render_event`] with the local time zone's UTC offset (seconds east) given.
fn render_event_at_offset(
    event: &Event,
    rule: &RuleMeta,
    epoch_ns: u64,
    hostname: &str,
    user_name: impl FnOnce(u32) -> Option<String>,
    container: &ContainerFields,
    utc_offset_secs: i64,
) -> RenderedAlert {
    let fields = event_fields(event, rule, epoch_ns, user_name(event.uid), container);
    let tod = time_of_day(epoch_ns, utc_offset_secs);
    let priority = priority_name(&rule.priority);

    let template = parse_template(&rule.output);
    let mut text = format!("{tod}: {priority} ");
    render_pieces(&template, &fields, &tod, &mut text);
    render_pieces(&parse_template(SUFFIX_TEMPLATE), &fields, &tod, &mut text);
    if event.flags & event_flags::NOT_ENFORCED != 0 {
        // Whatever the rule's message says, the text tells that nothing was carried out.
        text.push_str(&format!(" (not enforced: {})", action_word(event)));
    }

    let mut output_fields = BTreeMap::new();
    // Falco appends the container suffix to the rule's format, so its fields are in
    // `output_fields` too.
    let suffix = parse_template(SUFFIX_TEMPLATE);
    let referenced = template.iter().chain(&suffix).filter_map(|p| match p {
        Piece::Field(name) => Some(name.as_str()),
        Piece::Literal(_) => None,
    });
    for name in referenced.chain(ALWAYS_IN_OUTPUT_FIELDS) {
        let value = fields.get(name).cloned().unwrap_or(Value::Null);
        output_fields.insert(name.to_owned(), value);
    }
    let tags: BTreeSet<&str> = rule.tags.iter().map(String::as_str).collect();
    let json = to_json(&JsonAlert {
        hostname,
        output: &text,
        output_fields: &output_fields,
        priority,
        rule: &rule.name,
        source: "syscall",
        tags: Some(tags.into_iter().collect()),
        time: rfc3339_utc(epoch_ns),
    });
    RenderedAlert { text, json }
}

/// An agent message in Falco's internal-alert shape (`source` "internal", no `tags`), e.g.
/// the event-drop report. As in Falco's `handle_msg`, `output` is the message alone, without
/// the time and priority prefix.
pub fn render_internal_json(
    rule: &str,
    output: &str,
    output_fields: &BTreeMap<String, Value>,
    priority: Priority,
    epoch_ns: u64,
    hostname: &str,
) -> String {
    to_json(&JsonAlert {
        hostname,
        output,
        output_fields,
        priority: priority.as_str(),
        rule,
        source: "internal",
        tags: None,
        time: rfc3339_utc(epoch_ns),
    })
}

/// The text form of an internal alert, as Falco's `handle_msg` writes it:
/// `<time>: <Priority> <output> (key=value key=value)`, keys sorted, values as JSON (strings
/// quoted).
pub fn render_internal_text(
    output: &str,
    output_fields: &BTreeMap<String, Value>,
    priority: Priority,
    epoch_ns: u64,
) -> String {
    let offset = local_utc_offset(epoch_secs(epoch_ns));
    internal_text_at_offset(output, output_fields, priority, epoch_ns, offset)
}

fn internal_text_at_offset(
    output: &str,
    output_fields: &BTreeMap<String, Value>,
    priority: Priority,
    epoch_ns: u64,
    utc_offset_secs: i64,
) -> String {
    let tod = time_of_day(epoch_ns, utc_offset_secs);
    let fields: Vec<String> = output_fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{tod}: {} {output} ({})",
        priority.as_str(),
        fields.join(" ")
    )
}

/// The JSON object. Fields are declared in alphabetical order, which is the order serde
/// writes them: the key order does not depend on serde_json's `preserve_order` feature.
#[derive(Serialize)]
struct JsonAlert<'a> {
    hostname: &'a str,
    output: &'a str,
    output_fields: &'a BTreeMap<String, Value>,
    priority: &'a str,
    rule: &'a str,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<&'a str>>,
    time: String,
}

fn to_json(alert: &JsonAlert<'_>) -> String {
    // Only strings, string-keyed maps and JSON values: serialisation cannot fail.
    serde_json::to_string(alert).expect("alert serialises")
}

/// Falco's spelling of the rule's priority. The compiler validates priorities; one that does not
/// parse is passed through rather than silently changing the alert's severity.
fn priority_name(p: &str) -> &str {
    match Priority::parse(p) {
        Some(known) => known.as_str(),
        None => p,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Field(String),
}

/// Splits a Falco output template into literal text and `%field` references. A field name is
/// `[A-Za-z0-9_.]+` optionally followed by a `[...]` argument (`proc.aname[2]`); trailing dots
/// are punctuation (`file=%fd.name.`). `%%` is a literal `%`, and so is a `%` that starts no
/// field name.
fn parse_template(template: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('%') {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('%') {
            lit.push('%');
            rest = r;
            continue;
        }
        let mut end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(after.len());
        while after[..end].ends_with('.') {
            end -= 1;
        }
        if end == 0 {
            lit.push('%');
            rest = after;
            continue;
        }
        if after[end..].starts_with('[')
            && let Some(close) = after[end..].find(']')
        {
            end += close + 1;
        }
        if !lit.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut lit)));
        }
        pieces.push(Piece::Field(after[..end].to_owned()));
        rest = &after[end..];
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        pieces.push(Piece::Literal(lit));
    }
    pieces
}

/// Appends the rendered template. `%evt.time` shows as the local time of day, as in Falco's
/// text output (its JSON `output_fields` carries the integer).
fn render_pieces(pieces: &[Piece], fields: &BTreeMap<&str, Value>, tod: &str, out: &mut String) {
    for piece in pieces {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Field(name) if name == "evt.time" => out.push_str(tod),
            Piece::Field(name) => match fields.get(name.as_str()) {
                Some(Value::String(s)) => out.push_str(s),
                Some(Value::Null) | None => out.push_str(NA),
                Some(v) => out.push_str(&v.to_string()),
            },
        }
    }
}

/// This machine's host name, for the JSON `hostname` key.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `len - 1` bytes, leaving a NUL that gethostname (which
    // need not terminate a truncated name) cannot overwrite.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_ebpf::abi::{Action, EVENT_OPEN};

    const T: u64 = 1_764_352_679_315_968_470; // 2025-11-28T17:57:59.315968470Z

    const SUFFIX: &str = " container_id=<NA> container_name=<NA> \
        container_image_repository=<NA> container_image_tag=<NA> k8s_pod_name=<NA> \
        k8s_ns_name=<NA>";

    fn event(action: Action, flags: u32, cmdline: &[u8]) -> Event {
        let mut e = Event::from_bytes(&vec![0u8; std::mem::size_of::<Event>()]).unwrap();
        e.kind = EVENT_OPEN;
        e.action = action as u32;
        e.flags = flags;
        (e.pid, e.tid, e.ppid, e.uid, e.gid) = (4242, 4243, 4200, 1000, 1001);
        e.comm[..3].copy_from_slice(b"cat");
        e.pcomm[..4].copy_from_slice(b"bash");
        e.cmdline[..cmdline.len()].copy_from_slice(cmdline);
        e.cmdline_len = cmdline.len() as u32;
        let path = b"/mnt/secrets/db-password";
        e.path[..path.len()].copy_from_slice(path);
        e.path_len = path.len() as u32;
        e
    }

    fn rule(priority: &str, output: &str) -> RuleMeta {
        RuleMeta {
            id: 0,
            name: "Vault secret direct read".into(),
            operation: "read".into(),
            action: Action::Kill,
            priority: priority.into(),
            output: output.into(),
            tags: vec!["vault".into(), "secrets".into(), "vault".into()],
            patterns: vec![],
            line: 1,
            column: 1,
        }
    }

    const NONE: ContainerFields = ContainerFields {
        id: None,
        name: None,
        image_repository: None,
        image_tag: None,
        pod_name: None,
        pod_namespace: None,
    };

    #[test]
    fn every_field_the_compiler_accepts_has_a_value_here() {
        let r = rule("critical", "x");
        let fields = event_fields(&event(Action::Kill, 0, b"cat"), &r, T, None, &NONE);
        for f in guard_compiler::checked::Field::ALL {
            assert!(
                fields.contains_key(f.as_str()),
                "`%{}` passes guardc's check but the agent has no value for it",
                f.as_str()
            );
        }
    }

    #[test]
    fn container_and_pod_fields_fill_the_suffix() {
        let r = rule("critical", "read by %container.name in %k8s.ns.name");
        let c = ContainerFields {
            id: Some("3f2a9c1b7d0e".into()),
            name: Some("web".into()),
            image_repository: Some("docker.io/library/nginx".into()),
            image_tag: Some("1.25".into()),
            pod_name: Some("web-7d4b9".into()),
            pod_namespace: Some("payments".into()),
        };
        let e = event(Action::Kill, 0, b"cat x");
        let got = render_event_at_offset(&e, &r, T, "h", |_| None, &c, 0);
        assert_eq!(
            got.text,
            "17:57:59.315968470: Critical read by web in payments container_id=3f2a9c1b7d0e \
             container_name=web container_image_repository=docker.io/library/nginx \
             container_image_tag=1.25 k8s_pod_name=web-7d4b9 k8s_ns_name=payments"
        );
        let host = ContainerFields {
            id: Some("host".into()),
            ..NONE
        };
        let fields = event_fields(&e, &r, T, None, &host);
        assert_eq!(fields["container.id"], "host");
        assert_eq!(fields["k8s.pod.name"], Value::Null);
    }

    fn appuser(uid: u32) -> Option<String> {
        (uid == 1000).then(|| "appuser".to_owned())
    }

    #[test]
    fn renders_text_and_json_like_falco() {
        let r = rule(
            "critical",
            "Vault secret file opened (user=%user.name proc=%proc.name file=%fd.name \
             action=%guard.action cmd=%proc.cmdline 100%% %no.such ppid=%proc.ppid)",
        );
        let e = event(Action::Kill, 0, b"cat /mnt/secrets/db-password");
        let got = render_event_at_offset(&e, &r, T, "node-1", appuser, &NONE, 0);
        let text = format!(
            "17:57:59.315968470: Critical Vault secret file opened (user=appuser proc=cat \
             file=/mnt/secrets/db-password action=killed cmd=cat /mnt/secrets/db-password \
             100% <NA> ppid=4200){SUFFIX}"
        );
        assert_eq!(got.text, text);
        let json = format!(
            r#"{{"hostname":"node-1","output":"{text}","output_fields":{{"container.id":null,"container.image.repository":null,"container.image.tag":null,"container.name":null,"evt.time":{T},"fd.name":"/mnt/secrets/db-password","guard.action":"killed","k8s.ns.name":null,"k8s.pod.name":null,"no.such":null,"proc.cmdline":"cat /mnt/secrets/db-password","proc.name":"cat","proc.pid":4242,"proc.ppid":4200,"user.name":"appuser"}},"priority":"Critical","rule":"Vault secret direct read","source":"syscall","tags":["secrets","vault"],"time":"2025-11-28T17:57:59.315968470Z"}}"#
        );
        assert_eq!(got.json, json);
    }

    #[test]
    fn field_values_follow_flags_and_types() {
        let r = rule(
            "INFO",
            "%evt.time %evt.type %proc.cmdline %user.name/%user.uid %guard.action \
             %proc.exepath %container.id %rule.name %thread.tid %group.gid",
        );
        let e = event(
            Action::Kill,
            event_flags::KILL_FAILED | event_flags::CMDLINE_TRUNCATED,
            b"sh\0-c\0cat x\0",
        );
        // One hour east of UTC.
        let got = render_event_at_offset(&e, &r, T, "h", |_| None, &NONE, 3600);
        assert_eq!(
            got.text,
            format!(
                "18:57:59.315968470: Informational 18:57:59.315968470 open sh -c cat x... \
                 <NA>/1000 kill failed <NA> <NA> Vault secret direct read 4243 1001{SUFFIX}"
            )
        );
        let v: Value = serde_json::from_str(&got.json).unwrap();
        let f = &v["output_fields"];
        assert_eq!(f["evt.time"], Value::from(T));
        assert_eq!(f["user.uid"], Value::from(1000));
        assert_eq!(f["user.name"], Value::Null);
        assert_eq!(f["proc.exepath"], Value::Null);
        assert_eq!(f["guard.action"], "kill failed");
        assert_eq!(f["proc.cmdline"], "sh -c cat x...");
        assert_eq!(
            v["time"], "2025-11-28T17:57:59.315968470Z",
            "JSON time stays UTC"
        );

        for (action, word) in [(Action::Deny, "denied"), (Action::Alert, "alerted")] {
            let fields = event_fields(&event(action, 0, b""), &r, T, None, &NONE);
            assert_eq!(fields["guard.action"], word);
        }
        // Audit mode and the safety valve: judged, not carried out; the text says so too.
        let off = event_flags::NOT_ENFORCED;
        for (action, word) in [(Action::Kill, "would kill"), (Action::Deny, "would deny")] {
            let fields = event_fields(&event(action, off, b""), &r, T, None, &NONE);
            assert_eq!(fields["guard.action"], word);
            let got =
                render_event_at_offset(&event(action, off, b""), &r, T, "h", |_| None, &NONE, 0);
            assert!(
                got.text.ends_with(&format!("(not enforced: {word})")),
                "{}",
                got.text
            );
        }
        let mut odd = event(Action::Deny, 0, b"");
        (odd.kind, odd.action) = (99, 77);
        let fields = event_fields(&odd, &r, T, None, &NONE);
        assert_eq!(
            (&fields["evt.type"], &fields["guard.action"]),
            (&Value::Null, &Value::Null)
        );
    }

    #[test]
    fn public_render_uses_local_time() {
        let r = rule("Warning", "x");
        let got = render_event(&event(Action::Alert, 0, b""), &r, T, "h", |_| None, &NONE);
        let tod = time_of_day(T, local_utc_offset(epoch_secs(T)));
        assert_eq!(got.text, format!("{tod}: Warning x{SUFFIX}"));
    }

    #[test]
    fn template_parsing() {
        use Piece::{Field as F, Literal as L};
        let p = |s: &str| parse_template(s);
        assert_eq!(p("%"), vec![L("%".into())]);
        assert_eq!(p("a %% b%"), vec![L("a % b%".into())]);
        assert_eq!(p("%%%fd.name"), vec![L("%".into()), F("fd.name".into())]);
        assert_eq!(
            p("f=%fd.name."),
            vec![L("f=".into()), F("fd.name".into()), L(".".into())]
        );
        assert_eq!(
            p("%proc.aname[2]x"),
            vec![F("proc.aname[2]".into()), L("x".into())]
        );
        assert_eq!(
            p("%proc.aname[2"),
            vec![F("proc.aname".into()), L("[2".into())]
        );
        assert_eq!(p("(%-x %.)"), vec![L("(%-x %.)".into())]);
        assert_eq!(
            p("é%proc.pidé"),
            vec![L("é".into()), F("proc.pid".into()), L("é".into())]
        );
    }

    #[test]
    fn internal_alert_json() {
        let fields = BTreeMap::from([
            ("n_drops".to_owned(), Value::from(12)),
            ("n_evts".to_owned(), Value::from(3400)),
        ]);
        let got = render_internal_json(
            "Falco internal: syscall event drop",
            "12 system calls dropped in last second.",
            &fields,
            Priority::Debug,
            T,
            "node-1",
        );
        assert_eq!(
            got,
            r#"{"hostname":"node-1","output":"12 system calls dropped in last second.","output_fields":{"n_drops":12,"n_evts":3400},"priority":"Debug","rule":"Falco internal: syscall event drop","source":"internal","time":"2025-11-28T17:57:59.315968470Z"}"#
        );
    }

    #[test]
    fn internal_alert_text() {
        let fields = BTreeMap::from([
            ("n_evts".to_owned(), Value::from(3400)),
            ("cause".to_owned(), Value::from("ring full")),
        ]);
        let got = internal_text_at_offset("Drops.", &fields, Priority::Debug, T, 0);
        let want = r#"17:57:59.315968470: Debug Drops. (cause="ring full" n_evts=3400)"#;
        assert_eq!(got, want);
    }

    #[test]
    fn priorities() {
        assert_eq!(Priority::parse("info"), Some(Priority::Informational));
        assert_eq!(Priority::parse("EMERGENCY"), Some(Priority::Emergency));
        assert_eq!(
            Priority::parse("Notice").map(Priority::as_str),
            Some("Notice")
        );
        assert_eq!(Priority::parse("crit"), None);
        assert_eq!(priority_name("bogus"), "bogus");
        assert!(Priority::Emergency < Priority::Debug);
        for (p, name) in PRIORITY_NAMES {
            assert_eq!((Priority::parse(name), p.as_str()), (Some(p), name));
        }
    }

    #[test]
    fn hostname_matches_the_kernel() {
        let want = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(), want.trim_end());
    }
}
