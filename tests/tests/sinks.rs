//! Alert sinks: the webhook (falcosidekick's way), the file (rotated on SIGHUP), and the
//! Prometheus endpoint, checked against the Falco output contract.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use guard_runtime::metrics::Metrics;
use guard_runtime::webhook::Webhook;
use guard_tests::agent::{self, Agent};
use guard_tests::falco::check_alert;
use guard_tests::http::Receiver;

fn alert_line(rule: &str) -> String {
    format!(
        r#"{{"hostname":"h","output":"17:57:59.315968470: Critical x","output_fields":{{"evt.time":1,"fd.name":"/x"}},"priority":"Critical","rule":"{rule}","source":"syscall","tags":[],"time":"2025-11-28T17:57:59.315968470Z"}}"#
    )
}

/// No root needed: the webhook alone against local receivers.
#[test]
fn webhook_retries_refusals_and_counts_what_it_cannot_deliver() {
    // Two server errors, then success: the alert arrives on the third attempt.
    let rx = Receiver::start(vec![500, 503], false).expect("receiver");
    let metrics = Arc::new(Metrics::default());
    let hook = Webhook::start(&rx.url, 16, metrics.clone()).expect("starts");
    hook.send(&alert_line("a"));
    let got = rx.wait(3, Duration::from_secs(10));
    hook.close(Duration::from_secs(10));
    assert_eq!(got.len(), 3, "{got:?}");
    for r in &got {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/"));
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        check_alert(&r.body).expect("the payload keeps the contract");
    }
    assert_eq!(metrics.webhook_sent.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.webhook_failed.load(Ordering::Relaxed), 0);

    // A refusal (400) is final: asked once, counted as lost.
    let rx = Receiver::start(vec![400], false).expect("receiver");
    let metrics = Arc::new(Metrics::default());
    let hook = Webhook::start(&rx.url, 16, metrics.clone()).expect("starts");
    hook.send(&alert_line("b"));
    hook.send(&alert_line("c"));
    let got = rx.wait(2, Duration::from_secs(10));
    hook.close(Duration::from_secs(10));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(metrics.webhook_failed.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.webhook_sent.load(Ordering::Relaxed), 1);

    // A receiver that hangs: the queue fills, the overflow is counted, nothing blocks.
    let rx = Receiver::start(vec![], true).expect("receiver");
    let metrics = Arc::new(Metrics::default());
    let hook = Webhook::start(&rx.url, 2, metrics.clone()).expect("starts");
    let started = std::time::Instant::now();
    for i in 0..20 {
        hook.send(&alert_line(&format!("r{i}")));
    }
    assert!(started.elapsed() < Duration::from_secs(1), "send blocked");
    let dropped = metrics.webhook_queue_full.load(Ordering::Relaxed);
    assert!((17..=18).contains(&dropped), "dropped {dropped}");
    drop(hook);
    assert!(
        Webhook::start("ftp://x/", 1, metrics).is_err(),
        "only http(s) URLs"
    );
}

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}

#[test]
fn the_agent_feeds_every_sink_and_reopens_its_file_on_sighup() {
    if !guard_tests::require_kernel_tests("sinks") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let dir = std::env::temp_dir().join(format!("guard-sinks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("s")).expect("dir");
    std::fs::write(dir.join("s/f"), "secret").expect("file");
    let policy = dir.join("p.grd");
    std::fs::write(
        &policy,
        format!(
            "rule \"sink test\"\nguard {}/s/* allow nobody else kill alert critical \"%proc.name read %fd.name\" tags [b, a]\n",
            dir.display()
        ),
    )
    .expect("policy");
    let object = agent::temp_object("sinks");
    agent::compile(&policy, &object).expect("compiles");
    let rx = Receiver::start(vec![], false).expect("receiver");
    let log = dir.join("alerts.log");
    // A free port for the metrics endpoint.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let args = [
        "--json",
        "--webhook",
        &rx.url,
        "--output-file",
        log.to_str().expect("utf-8"),
        "--metrics-addr",
        &metrics_addr,
    ];
    let agent = Agent::start(&object, &args, false).expect("loads");
    let cat = || {
        Command::new("cat")
            .arg(dir.join("s/f"))
            .output()
            .expect("cat runs")
    };
    assert_eq!(guard_tests::scenario::shell_status(cat().status), Some(137));
    let posted = rx.wait(1, Duration::from_secs(10));
    assert_eq!(posted.len(), 1, "{posted:?}");
    let v = check_alert(&posted[0].body).expect("the webhook payload keeps the contract");
    assert_eq!(v["rule"], "sink test");
    assert_eq!(v["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(v["output_fields"]["guard.action"], "killed");

    // Rotation: move the file away, SIGHUP, the next alert lands in a new file.
    let rotated = dir.join("alerts.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    agent.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(guard_tests::scenario::shell_status(cat().status), Some(137));
    let _ = agent.wait_alerts(2, Duration::from_secs(10));
    let old = std::fs::read_to_string(&rotated).expect("rotated file");
    let new = std::fs::read_to_string(&log).expect("a new file after SIGHUP");
    assert_eq!((old.lines().count(), new.lines().count()), (1, 1));
    for line in old.lines().chain(new.lines()) {
        check_alert(line).expect("file lines keep the contract");
    }

    let metrics = scrape(&metrics_addr);
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l == "guard_alerts_total{rule=\"sink test\",action=\"killed\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "guard_alerts_dropped_total{cause=\"webhook_queue_full\"} 0"),
        "{metrics}"
    );
    let _ = agent.stop();
    assert_eq!(rx.wait(2, Duration::from_secs(10)).len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(object);
}
