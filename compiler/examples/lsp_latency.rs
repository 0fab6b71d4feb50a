//! How fast `guardc lsp` answers on a 1,000-rule policy: the benchmark behind the server's
//! 50 ms budget (a measurement, not a test).
//!
//!     cargo build --release -p guard-compiler
//!     cargo run --release -p guard-compiler --example lsp_latency [-- RULES]
//!
//! It starts the `guardc` built next to it (or `$GUARDC`) as `guardc lsp`, opens a generated
//! policy of RULES rules (default 1000; valid, so lowering runs on every change), and times,
//! from the moment an edit is written to the server's stdin:
//! - the first diagnostics for the new version (the front end's: what "answers" means);
//! - the complete set, once the background lowering has reported on it;
//! - hover and completion requests right after the edit;
//! - the same first answer during a burst of edits sent as fast as they are answered, while
//!   lowering is busy with earlier versions.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn main() {
    let rules: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let guardc = std::env::var_os("GUARDC").map_or_else(
        || {
            let exe = std::env::current_exe().expect("current exe");
            // target/PROFILE/examples/lsp_latency -> target/PROFILE/guardc
            exe.parent()
                .and_then(|d| d.parent())
                .map(|d| d.join("guardc"))
                .expect("target directory")
        },
        PathBuf::from,
    );
    assert!(
        guardc.exists(),
        "{} not found: build it first (cargo build --release -p guard-compiler) or set GUARDC",
        guardc.display()
    );
    let cache = std::env::temp_dir().join(format!("guardc-lsp-bench-{}", std::process::id()));
    let mut child = Command::new(&guardc)
        .arg("lsp")
        .env("XDG_CACHE_HOME", &cache)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("guardc lsp starts");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, incoming) = channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        while let Some(m) = read_message(&mut reader) {
            if sender.send(m).is_err() {
                break;
            }
        }
    });
    let mut c = Client {
        stdin: child.stdin.take().expect("stdin"),
        incoming,
        early: Vec::new(),
        next_id: 1,
    };
    c.request(
        "initialize",
        json!({ "processId": null, "capabilities": {} }),
    );
    c.notify("initialized", json!({}));

    let (text, lines) = policy(rules);
    let uri = "file:///bench/big.grd";
    println!(
        "guardc lsp: {} ({rules} rules, {} lines, {} KiB)",
        guardc.display(),
        lines,
        text.len() / 1024
    );
    let started = Instant::now();
    c.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "guard", "version": 1, "text": text } }),
    );
    let first = c.publish(uri, 1);
    assert_eq!(first, 0, "the generated policy has diagnostics");
    let front = started.elapsed();
    c.publish(uri, 1);
    println!(
        "open: front end {:.1} ms, with lowering {:.1} ms",
        ms(front),
        ms(started.elapsed())
    );

    // Each edit rewrites a digit in the message of a rule in the middle of the file; hover
    // asks about the rule's condition, completion what may follow its `allow`.
    let guard_line = text
        .lines()
        .enumerate()
        .skip(lines as usize / 2)
        .find(|(_, l)| l.starts_with("guard "))
        .map(|(i, _)| i)
        .expect("a rule");
    let allow = text
        .lines()
        .nth(guard_line)
        .and_then(|l| l.find(" allow "))
        .expect("allow") as u32;
    let (guard_line, line) = (guard_line as u32, guard_line as u32 + 1);
    let edit = |c: &mut Client, version: i64| {
        let digit = (version % 10).to_string();
        c.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": uri, "version": version },
                "contentChanges": [{
                    "range": { "start": { "line": line, "character": 21 }, "end": { "line": line, "character": 22 } },
                    "text": digit,
                }],
            }),
        );
    };
    let (mut answers, mut complete, mut hovers, mut completions) = (vec![], vec![], vec![], vec![]);
    let mut version = 1;
    for _ in 0..20 {
        version += 1;
        let t = Instant::now();
        edit(&mut c, version);
        c.publish(uri, version);
        answers.push(t.elapsed());
        let h = Instant::now();
        c.request(
            "textDocument/hover",
            json!({ "textDocument": { "uri": uri }, "position": { "line": guard_line, "character": allow + 8 } }),
        );
        hovers.push(h.elapsed());
        let k = Instant::now();
        c.request(
            "textDocument/completion",
            json!({ "textDocument": { "uri": uri }, "position": { "line": guard_line, "character": allow + 7 } }),
        );
        completions.push(k.elapsed());
        c.publish(uri, version);
        complete.push(t.elapsed());
    }
    let mut burst = Vec::new();
    for _ in 0..50 {
        version += 1;
        let t = Instant::now();
        edit(&mut c, version);
        c.publish(uri, version);
        burst.push(t.elapsed());
    }
    report("edit -> first diagnostics (front end)", &mut answers);
    report("edit -> complete diagnostics (lowered)", &mut complete);
    report("hover after an edit", &mut hovers);
    report("completion after an edit", &mut completions);
    report("burst edit -> first diagnostics", &mut burst);

    c.request("shutdown", Value::Null);
    c.notify("exit", Value::Null);
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&cache);
}

/// A valid policy of `rules` rules in the shape of the shipped ones (imports, macros, named
/// rules with messages and tags, overlapping nothing), and its line count.
fn policy(rules: usize) -> (String, u32) {
    let mut text = String::from(
        "import \"shells\"\nimport \"net\"\n\n\
         # The application.\nmacro app = image(pid1, \"python app.py\")\n\
         macro admin = uid(0) and not tty\n\n",
    );
    for i in 0..rules {
        let subject = [
            "app",
            "app or admin",
            "name(shells) and not tty",
            "uid(1000)",
        ][i % 4];
        let operation = ["read", "open", "write"][i % 3];
        text.push_str(&format!(
            "rule \"rule {i}\"\n\
             guard {operation} /srv/app{i}/secrets/** /etc/app{i}/*.key allow {subject} else kill\n    \
             alert critical \"r0 {i}: %fd.name by %proc.name (cmd=%proc.cmdline)\"\n    \
             tags [t{}, secrets]\n",
            i % 10
        ));
    }
    text.push_str("guard exec net_tools allow app else alert warning\n");
    let lines = text.lines().count() as u32;
    (text, lines)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what:<40} median {:7.2} ms   p95 {:7.2} ms   max {:7.2} ms   ({} samples)",
        ms(at(0.5)),
        ms(at(0.95)),
        ms(at(1.0)),
        samples.len()
    );
}

struct Client {
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    /// Publications read while waiting for a response.
    early: Vec<Value>,
    next_id: i64,
}

impl Client {
    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let m = self.incoming.recv().expect("guardc lsp is running");
            // Publications for this benchmark's document are waited for explicitly; the
            // second one of a version may arrive while a request is answered.
            if m["id"] == json!(id) {
                return m["result"].clone();
            }
            if m["method"] == "textDocument/publishDiagnostics" {
                self.early.push(m);
            }
        }
    }

    /// Waits for the next publication of `version`; the number of diagnostics in it.
    fn publish(&mut self, uri: &str, version: i64) -> usize {
        loop {
            let m = match self.early.is_empty() {
                false => self.early.remove(0),
                true => self.incoming.recv().expect("guardc lsp is running"),
            };
            if m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["uri"] == uri
                && m["params"]["version"] == json!(version)
            {
                return m["params"]["diagnostics"].as_array().map_or(0, Vec::len);
            }
        }
    }
}

fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("Content-Length: ") {
            length = n.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}
