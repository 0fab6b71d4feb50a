//! The BPF LSM backend: deny and kill before the open, for every way into the kernel (the
//! article's attacks, and an open submitted through io_uring).
//!
//! These tests need a kernel booted with `bpf` in its `lsm=` list whose verifier accepts LSM
//! programs; this machine's kernel refuses them, so they are `#[ignore]`d here (cargo test
//! lists them as ignored, never as passed) and run in the VM ring (`cargo xtask vm-test`, which
//! passes `--include-ignored`), on Debian's 6.1 kernel. There a missing BPF LSM fails them.

use std::process::Command;
use std::time::Duration;

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::{Attempt, Scenario, attacks};
use serde_json::Value;

/// The seed scenario's policy with `action`, compiled.
fn secrets_object(name: &str, action: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("guard-lsm-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let policy = dir.join("secrets.grd");
    std::fs::write(
        &policy,
        format!("guard /mnt/secrets/* allow ancestor(pid1, \"python app.py\") else {action}\n"),
    )
    .expect("policy");
    let object = agent::temp_object(&format!("lsm-{name}"));
    agent::compile(&policy, &object).expect("compiles");
    object
}

fn start_agent(object: &std::path::Path) -> Agent {
    let agent = Agent::start(object, &["--json", "--backend", "lsm"], false)
        .expect("guard-run loads the policy with the LSM backend");
    assert!(
        agent
            .stderr()
            .iter()
            .any(|l| l.contains("with the lsm (BPF LSM")),
        "{:?}",
        agent.stderr()
    );
    agent
}

/// The article's attacks plus an open through io_uring, which no syscall hook sees.
fn run_attacks(scenario: &Scenario) -> Vec<Attempt> {
    let uring = guard_tests::bin("guard-uring-open");
    let uring = uring.to_str().expect("utf-8");
    let mut all = attacks();
    all.push(("io_uring", vec![uring, "/mnt/secrets/db-password"]));
    all.iter()
        .map(|(name, argv)| {
            let a = scenario.attack(name, argv).expect("nsenter runs");
            std::thread::sleep(Duration::from_millis(200));
            a
        })
        .collect()
}

fn assert_no_secret(attempts: &[Attempt], secrets: &[String]) {
    for a in attempts {
        assert!(a.stdout.is_empty(), "{} printed {:?}", a.name, a.stdout);
        for s in secrets {
            assert!(
                !a.stderr.contains(s.as_str()),
                "{} leaked the secret",
                a.name
            );
        }
    }
}

fn assert_app_unharmed(scenario: &Scenario) {
    assert!(scenario.app_alive(), "the app was killed");
    let (_, fails) = scenario.app_reads().expect("app status");
    assert_eq!(fails, 0, "the app had failed reads");
    let (worker_reads, worker_fails) = scenario.worker_reads().expect("worker status");
    assert_eq!(worker_fails, 0, "the app's worker had failed reads");
    assert!(worker_reads > 0);
}

/// One alert per attempt, each saying what guard did.
fn assert_alerts(alerts: &[String], attempts: &[Attempt], action: &str) {
    assert_eq!(alerts.len(), attempts.len(), "{}", alerts.join("\n"));
    for line in alerts {
        let v: Value = serde_json::from_str(line).expect("JSON");
        let f = &v["output_fields"];
        assert_eq!(f["fd.name"], "/mnt/secrets/db-password", "{line}");
        assert_eq!(f["guard.action"], action, "{line}");
    }
}

#[test]
#[ignore = "needs BPF LSM: runs in the VM ring (cargo xtask vm-test)"]
fn deny_fails_the_open_with_eperm_and_the_attacker_lives_on() {
    if !guard_tests::require_kernel_tests("lsm deny") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = secrets_object("deny", "deny");
    let scenario = Scenario::start("lsm-deny").expect("the app starts");
    let agent = start_agent(&object);
    for r in agent.stderr() {
        if r.contains("rule 0") {
            assert!(r.contains("deny (the open fails with EPERM)"), "{r}");
        }
    }
    let mut attempts = run_attacks(&scenario);
    // The attacker's shell survives a denied command and goes on.
    let shell = scenario
        .attack(
            "sh",
            &["sh", "-c", "cat /mnt/secrets/db-password; echo still-here"],
        )
        .expect("nsenter runs");
    scenario
        .wait_for_reads(10, Duration::from_secs(20))
        .expect("the app keeps reading");
    let alerts = agent.wait_alerts(attempts.len() + 1, Duration::from_secs(10));
    let _ = agent.stop();
    assert_eq!(shell.status, Some(0), "{shell:?}");
    assert_eq!(String::from_utf8_lossy(&shell.stdout), "still-here\n");
    assert!(
        shell.stderr.contains("Operation not permitted"),
        "{shell:?}"
    );

    for a in &attempts {
        // Not killed: the tool reports the failed open and exits on its own.
        assert!(
            matches!(a.status, Some(1..=2)),
            "{} was not simply refused: {a:?}",
            a.name
        );
        // EPERM, as BPF LSM tools return it (strerror: "Operation not permitted"; EACCES
        // would read "Permission denied").
        assert!(
            a.stderr.contains("Operation not permitted"),
            "{} did not see EPERM: {a:?}",
            a.name
        );
    }
    assert_no_secret(&attempts, &[]);
    assert_app_unharmed(&scenario);
    attempts.push(shell);
    assert_alerts(&alerts, &attempts, "denied");
    let _ = std::fs::remove_file(object);
}

#[test]
#[ignore = "needs BPF LSM: runs in the VM ring (cargo xtask vm-test)"]
fn kill_stops_every_attempt_before_a_descriptor_exists() {
    if !guard_tests::require_kernel_tests("lsm kill") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = secrets_object("kill", "kill");
    let mut scenario = Scenario::start("lsm-kill").expect("the app starts");
    scenario.start_rotation(Duration::from_millis(1500));
    let agent = start_agent(&object);
    let attempts = run_attacks(&scenario);
    scenario
        .wait_for_reads(10, Duration::from_secs(20))
        .expect("the app keeps reading");
    let alerts = agent.wait_alerts(attempts.len(), Duration::from_secs(10));
    let secrets = scenario.stop_rotation();
    let _ = agent.stop();
    for a in &attempts {
        assert_eq!(a.status, Some(137), "{} was not killed: {a:?}", a.name);
    }
    assert_no_secret(&attempts, &secrets);
    assert_app_unharmed(&scenario);
    assert_alerts(&alerts, &attempts, "killed");
    let _ = std::fs::remove_file(object);
}

/// Without BPF LSM, `--backend lsm` refuses to load and says why; with it, the automatic
/// choice is the LSM backend.
#[test]
#[ignore = "needs BPF LSM: runs in the VM ring (cargo xtask vm-test)"]
fn auto_picks_lsm_where_the_kernel_has_it() {
    if !guard_tests::require_kernel_tests("lsm auto") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let object = secrets_object("auto", "deny");
    let agent = Agent::start(&object, &[], false).expect("a deny policy loads on BPF LSM");
    let stderr = agent.stderr().join("\n");
    let _ = agent.stop();
    assert!(stderr.contains("with the lsm (BPF LSM"), "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    // The same object, forced onto the tracepoint backend, is refused (it cannot deny).
    let out = Command::new(guard_tests::bin("guard-run"))
        .args(["load", "--backend", "tracepoint"])
        .arg(&object)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot make an open fail"));
    let _ = std::fs::remove_file(object);
}

/// A directory of the test's own, with programs that leave a marker behind as the first thing
/// they do: a `#!/bin/sh` script, the same with an interpreter argument, and a copy of `touch`
/// (a binary). Exec rules name these paths only, so they touch nothing else on the machine.
struct ExecFixture {
    dir: std::path::PathBuf,
}

impl ExecFixture {
    fn new(name: &str) -> ExecFixture {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("guard-lsm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let f = ExecFixture { dir };
        for (script, line) in [("script", "#!/bin/sh"), ("script-e", "#!/bin/sh -e")] {
            let body = format!("{line}\ntouch \"$0.ran\"\n");
            std::fs::write(f.path(script), body).expect("script");
        }
        let touch = guard_tests::which("touch").expect("touch");
        std::fs::copy(touch, f.path("tool")).expect("copy touch");
        for p in ["script", "script-e", "tool"] {
            std::fs::set_permissions(f.path(p), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        f
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().expect("utf-8").to_string()
    }

    fn object(&self, policy: &str) -> std::path::PathBuf {
        let file = self.dir.join("policy.grd");
        std::fs::write(&file, policy).expect("policy");
        let object = self.dir.join("policy.o");
        agent::compile(&file, &object).expect("compiles");
        object
    }

    /// Runs `name` with one argument from a shell that reports how the exec went and goes on:
    /// `(what the shell printed, its stderr, whether the program left its marker)`.
    fn run(&self, name: &str) -> (String, String, bool) {
        let program = self.path(name);
        let marker = format!("{program}.ran");
        let _ = std::fs::remove_file(&marker);
        // `touch` (the binary) makes the marker from its argument, the scripts from $0.
        let script = format!("{program} {marker}; echo status=$?");
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "the calling shell died: {out:?}");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            std::path::Path::new(&marker).exists(),
        )
    }
}

impl Drop for ExecFixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An alert message naming the fields the exec tests look at (JSON alerts carry the fields
/// their message uses).
const EXEC_OUTPUT: &str = "%evt.type %proc.exepath as %proc.name (%proc.cmdline) %guard.action";

fn exec_alerts(alerts: &[String]) -> Vec<Value> {
    alerts
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["output_fields"].clone())
        .collect()
}

/// What the agent said when it stopped about execs it had to judge after they happened.
fn judged_after(stderr: &[String]) -> String {
    stderr
        .iter()
        .find(|l| l.contains("guard-run: stopping"))
        .cloned()
        .unwrap_or_default()
}

/// `deny` on an exec rule: the `execve` fails with EPERM before the program exists (a script
/// is refused before its interpreter reads a line of it, a binary before its first
/// instruction), the caller lives on, and one alert says so. A script's own check judges the
/// command line the kernel gives its interpreter (`/bin/sh SCRIPT ARGS`, with the `#!` line's
/// argument if it has one), so a rule naming that command line lets it run.
#[test]
#[ignore = "needs BPF LSM: runs in the VM ring (cargo xtask vm-test)"]
fn an_exec_denied_never_starts_and_its_caller_lives_on() {
    if !guard_tests::require_kernel_tests("lsm exec deny") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let f = ExecFixture::new("exec-deny");
    let (script, script_e, tool) = (f.path("script"), f.path("script-e"), f.path("tool"));
    let object = f.object(&format!(
        "guard exec {script} {tool} allow nobody else deny alert critical \"{EXEC_OUTPUT}\"\n\
         guard exec {script_e} allow cmdline(\"/bin/sh -e {script_e} *\") else deny\n"
    ));
    let agent = start_agent(&object);
    let denied: Vec<_> = ["script", "tool"].iter().map(|p| (p, f.run(p))).collect();
    let allowed = f.run("script-e");
    let alerts = agent.wait_alerts(2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let (_, alerts_after, stderr) = agent.stop().expect("stops");
    // The load report (printed once enforcing started) says what the rule does here.
    let report = stderr.join("\n");
    assert!(
        report.contains("deny (execve fails with EPERM; the program never starts)"),
        "{report}"
    );
    for (name, (stdout, stderr, ran)) in &denied {
        assert_eq!(stdout, "status=126\n", "{name}: {stderr}");
        assert!(
            stderr.contains("Operation not permitted"),
            "{name}: {stderr}"
        );
        assert!(!ran, "{name} ran");
    }
    assert_eq!(allowed.0, "status=0\n", "{allowed:?}");
    assert!(allowed.2, "the allowed script did not run: {allowed:?}");
    assert_eq!(alerts_after.len(), 2, "{}", alerts_after.join("\n"));
    let fields = exec_alerts(&alerts);
    for (f, (exe, name, cmdline)) in fields.iter().zip([
        (&script, "script", format!("/bin/sh {script} {script}.ran")),
        (&tool, "tool", format!("{tool} {tool}.ran")),
    ]) {
        assert_eq!(f["evt.type"], "execve", "{f}");
        assert_eq!(f["guard.action"], "denied", "{f}");
        assert_eq!(f["proc.exepath"], exe.as_str(), "{f}");
        assert_eq!(f["proc.name"], name, "{f}");
        assert_eq!(f["proc.cmdline"], cmdline.as_str(), "{f}");
    }
    let stopping = judged_after(&stderr);
    assert!(stopping.contains(" 0 execs judged after"), "{stopping}");
}

/// `kill` on an exec rule: SIGKILL, and the `execve` fails, so the program never runs.
#[test]
#[ignore = "needs BPF LSM: runs in the VM ring (cargo xtask vm-test)"]
fn an_exec_killed_never_starts() {
    if !guard_tests::require_kernel_tests("lsm exec kill") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let f = ExecFixture::new("exec-kill");
    let object = f.object(&format!(
        "guard exec {} {} allow nobody else kill alert critical \"{EXEC_OUTPUT}\"\n",
        f.path("script"),
        f.path("tool")
    ));
    let agent = start_agent(&object);
    let runs: Vec<_> = ["script", "tool"].iter().map(|p| (p, f.run(p))).collect();
    let alerts = agent.wait_alerts(2, Duration::from_secs(10));
    let (_, _, stderr) = agent.stop().expect("stops");
    let report = stderr.join("\n");
    assert!(
        report.contains("kill (SIGKILL, and execve fails)"),
        "{report}"
    );
    for (name, (stdout, stderr, ran)) in &runs {
        assert_eq!(stdout, "status=137\n", "{name} was not killed: {stderr}");
        assert!(!ran, "{name} ran");
    }
    assert_eq!(alerts.len(), 2, "{}", alerts.join("\n"));
    for f in exec_alerts(&alerts) {
        assert_eq!(f["guard.action"], "killed", "{f}");
        assert_eq!(f["evt.type"], "execve", "{f}");
    }
}

/// The application's own start, after the policy is loaded: its PID 1 runs `python app.py`,
/// which an exec rule on interpreters allows by `image(pid1, "python app.py")`, the identity
/// the process has once the exec is done. The same rule refuses an interpreter started by
/// someone who entered the container. The rule is limited to this test's processes (those
/// descending from the test executable).
#[test]
#[ignore = "needs BPF LSM: runs in the VM ring (cargo xtask vm-test)"]
fn an_exec_rule_judges_the_new_image_so_the_app_starts() {
    if !guard_tests::require_kernel_tests("lsm exec app start") {
        return;
    }
    let _kernel = guard_tests::kernel_lock();
    let f = ExecFixture::new("exec-app");
    let raw = std::fs::read("/proc/self/cmdline").expect("own command line");
    let own = String::from_utf8(raw.strip_suffix(b"\0").unwrap_or(&raw).to_vec())
        .expect("utf-8")
        .replace('\0', " ");
    assert!(
        own.len() < 256 && !own.contains(['"', '\\']),
        "the test's command line cannot be named in a policy: {own:?}"
    );
    let object = f.object(&format!(
        "import \"interpreters\"\n\
         guard exec interpreter_exes allow image(pid1, \"python app.py\") \
         or not ancestor(any, \"{own}\") else deny\n"
    ));
    let agent = start_agent(&object);
    let scenario = Scenario::start("lsm-app-start").expect("the app starts under the exec rule");
    let attempt = scenario
        .attack("python3", &["python3", "-c", "print('ran')"])
        .expect("nsenter runs");
    scenario
        .wait_for_reads(5, Duration::from_secs(20))
        .expect("the app keeps reading");
    agent.wait_alerts(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let (_, alerts, stderr) = agent.stop().expect("stops");
    assert_eq!(attempt.status, Some(126), "{attempt:?}");
    assert!(attempt.stdout.is_empty(), "{attempt:?}");
    assert!(
        attempt.stderr.contains("Operation not permitted"),
        "{attempt:?}"
    );
    assert_app_unharmed(&scenario);
    assert_eq!(alerts.len(), 1, "{}", alerts.join("\n"));
    let fields = &exec_alerts(&alerts)[0];
    assert_eq!(fields["guard.action"], "denied", "{fields}");
    assert_eq!(
        fields["proc.cmdline"], "python3 -c print('ran')",
        "{fields}"
    );
    assert_ne!(
        fields["proc.pid"].as_u64(),
        Some(u64::from(scenario.app_pid)),
        "{fields}"
    );
    let stopping = judged_after(&stderr);
    assert!(stopping.contains(" 0 execs judged after"), "{stopping}");
}
