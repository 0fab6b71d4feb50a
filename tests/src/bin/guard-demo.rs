//! The product demo: the threat article's secrets scenario, end to end, on this machine.
//!
//! Compiles `policies/secrets.grd`, starts the app (`python app.py`, PID 1 of its own pid and
//! mount namespaces, reading a rotated secret), loads the policy with `guard-run`, then plays
//! the attacker (`nsenter` as `nobody`) with the article's seven commands and shows what
//! happened and the alerts. Needs root. Run it after `cargo build --release --workspace`.

use std::time::Duration;

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::{Scenario, attacks};

fn main() {
    if let Err(why) = guard_tests::kernel_test_prerequisites() {
        eprintln!("guard-demo: {why}");
        std::process::exit(2);
    }
    let _kernel = guard_tests::kernel_lock();
    let json = std::env::args().any(|a| a == "--json");
    let object = agent::temp_object("demo");
    let policy = guard_tests::secrets_policy();
    println!(
        "$ guardc compile {} -o {}",
        policy.display(),
        object.display()
    );
    if let Err(e) = agent::compile(&policy, &object) {
        eprintln!("guard-demo: {e}");
        std::process::exit(1);
    }
    let mut scenario = match Scenario::start("demo") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("guard-demo: cannot start the app: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "app `python app.py` running as PID 1 of its namespaces (host pid {})",
        scenario.app_pid
    );
    scenario.start_rotation(Duration::from_secs(2));
    println!(
        "$ guard-run load {}{}",
        object.display(),
        if json { " --json" } else { "" }
    );
    let extra: &[&str] = if json { &["--json"] } else { &[] };
    let agent = match Agent::start(&object, extra, true) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("guard-demo: {e}");
            std::process::exit(1);
        }
    };
    println!("\nattacker (kubectl exec equivalent: nsenter as nobody):");
    for (name, argv) in attacks() {
        match scenario.attack(name, &argv) {
            Ok(a) => println!(
                "  $ {:<70} exit {:>3}  stdout {:?}",
                argv.join(" "),
                a.status.map_or("?".into(), |s| s.to_string()),
                String::from_utf8_lossy(&a.stdout)
            ),
            Err(e) => println!("  $ {} -> {e}", argv.join(" ")),
        }
    }
    let _ = scenario.wait_for_reads(10, Duration::from_secs(5));
    let (ok, failed) = scenario.app_reads().unwrap_or((0, 0));
    println!(
        "\napp: {} (successful reads {ok}, failed reads {failed})",
        if scenario.app_alive() {
            "alive"
        } else {
            "DEAD"
        }
    );
    let alerts = agent.wait_alerts(7, Duration::from_secs(5));
    println!("\nalerts from guard-run ({}):", alerts.len());
    for a in &alerts {
        println!("{a}");
    }
    match agent.stop() {
        Ok((st, _, _)) => println!("\nguard-run stopped ({st}); programs detached"),
        Err(e) => eprintln!("guard-demo: {e}"),
    }
    scenario.stop_rotation();
    let _ = std::fs::remove_file(object);
}
