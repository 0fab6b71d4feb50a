//! `guardc lsp` as an editor runs it: a child process spoken to in JSON-RPC over its stdin and
//! stdout. Diagnostics as `guardc check` reports them (codes, ranges in the negotiated
//! encoding, help, related locations, lowering's lints), following edits; hover, go to
//! definition (into the standard library, written out to the cache directory), completion,
//! formatting; malformed input; shutdown and exit.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long any single answer may take before the test fails (debug builds, a busy machine).
const PATIENCE: Duration = Duration::from_secs(60);

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("guardc-lsp-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // The written-out standard library is read-only; make it removable.
        let _ = Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `guardc lsp` and what it has said that nobody has looked at yet.
struct Client {
    child: Child,
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    /// Notifications read while waiting for something else.
    pending: Vec<Value>,
    next_id: i64,
    dir: TempDir,
}

impl Client {
    /// Starts the server in a fresh directory (its cache there too) and initializes it.
    fn start(test: &str, capabilities: Value) -> (Client, Value) {
        Client::start_with(test, capabilities, &[], |_| {})
    }

    /// [`Client::start`] with more arguments to `guardc lsp`, after `prepare` has put files
    /// in the directory.
    fn start_with(
        test: &str,
        capabilities: Value,
        args: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> (Client, Value) {
        let dir = TempDir::new(test);
        prepare(&dir.0);
        let mut child = Command::new(env!("CARGO_BIN_EXE_guardc"))
            .arg("lsp")
            .args(args)
            .current_dir(&dir.0)
            .env("XDG_CACHE_HOME", dir.0.join("cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("guardc lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, incoming) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if sender.send(message).is_err() {
                    break;
                }
            }
        });
        let mut client = Client {
            child,
            stdin,
            incoming,
            pending: Vec::new(),
            next_id: 1,
            dir,
        };
        let root = uri(&client.dir.0);
        let result = client.request(
            "initialize",
            json!({ "processId": null, "rootUri": root, "capabilities": capabilities }),
        );
        client.notify("initialized", json!({}));
        (client, result)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and waits for its response: `Ok(result)` or `Err(error)`.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        let response = self.wait(|m| m["id"] == json!(id) && m.get("method").is_none());
        match response.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(response["result"].clone()),
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params)
            .unwrap_or_else(|e| panic!("`{method}` failed: {e}"))
    }

    /// The first message (pending or new) that `wanted` accepts.
    fn wait(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&wanted) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming.recv_timeout(left) {
                Ok(message) if wanted(&message) => return message,
                Ok(message) => self.pending.push(message),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no answer in time; unanswered: {:#?}", self.pending)
                }
                Err(RecvTimeoutError::Disconnected) => panic!("guardc lsp exited"),
            }
        }
    }

    /// The diagnostics published for `uri` at `version` once `done` accepts them (lowering
    /// reports after the front end, so a version may be published twice).
    fn diagnostics(
        &mut self,
        uri: &str,
        version: i64,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        loop {
            let published = self.wait(|m| {
                m["method"] == "textDocument/publishDiagnostics"
                    && m["params"]["uri"] == uri
                    && m["params"]["version"] == json!(version)
            });
            let list = published["params"]["diagnostics"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if done(&list) {
                return list;
            }
        }
    }

    fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "guard", "version": 1, "text": text } }),
        );
    }

    fn change(&mut self, uri: &str, version: i64, changes: Value) {
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": changes }),
        );
    }

    fn at(&mut self, method: &str, uri: &str, line: u32, character: u32) -> Value {
        self.request(
            method,
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } }),
        )
    }

    /// `shutdown`, then `exit`: the server must leave with status 0.
    fn shut_down(mut self) {
        assert_eq!(self.request("shutdown", Value::Null), Value::Null);
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "guardc lsp exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "guardc lsp did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // After a failed assertion: do not leave the server behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One message of the base protocol: headers, a blank line, `Content-Length` bytes of JSON.
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

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn codes(diagnostics: &[Value]) -> Vec<&str> {
    diagnostics
        .iter()
        .map(|d| d["code"].as_str().unwrap_or_default())
        .collect()
}

fn range(l0: u32, c0: u32, l1: u32, c1: u32) -> Value {
    json!({ "start": { "line": l0, "character": c0 }, "end": { "line": l1, "character": c1 } })
}

/// Two errors on two lines; the first after characters that take 2, 3 and 4 bytes in UTF-8
/// and 1, 1 and 2 units in UTF-16, so a range in the wrong encoding shows.
const TWO_ERRORS: &str = "guard \"/é𝄞\" allow ancestr(pid1, \"x\") else kill\n\
                          guard /b allow tty else alert critcal\n";

#[test]
fn diagnostics_follow_edits_and_include_lowering() {
    let (mut client, init) = Client::start("edits", json!({}));
    assert_eq!(init["capabilities"]["positionEncoding"], "utf-16");
    assert_eq!(init["serverInfo"]["name"], "guardc");
    let file = uri(&client.path("two.grd"));
    client.open(&file, TWO_ERRORS);
    let list = client.diagnostics(&file, 1, |_| true);
    assert_eq!(codes(&list), ["E0300", "E0400"]);
    // `ancestr` is at UTF-16 columns 19..26 (bytes 22..29, characters 18..25).
    assert_eq!(list[0]["range"], range(0, 19, 0, 26));
    assert_eq!(list[0]["severity"], 1);
    assert_eq!(list[0]["source"], "guardc");
    let message = list[0]["message"].as_str().expect("message");
    assert!(
        message.starts_with(
            "unknown function `ancestr`\nnot a known function\nhelp: did you mean `ancestor`?"
        ),
        "{message}"
    );
    assert_eq!(list[1]["range"], range(1, 30, 1, 37));

    // Fix the first (insert the missing `o`): only the second remains.
    client.change(
        &file,
        2,
        json!([{ "range": range(0, 25, 0, 25), "text": "o" }]),
    );
    let list = client.diagnostics(&file, 2, |_| true);
    assert_eq!(codes(&list), ["E0400"]);
    assert_eq!(list[0]["range"], range(1, 30, 1, 37));

    // Fix the second too, and add a rule overlapping the first: once lowered, the policy has
    // W0102 (which only lowering finds), with the other rule as related information.
    client.change(
        &file,
        3,
        json!([
            { "range": range(1, 30, 1, 37), "text": "critical" },
            { "range": range(2, 0, 2, 0), "text": "guard \"/é𝄞\" allow tty else kill\n" },
        ]),
    );
    let list = client.diagnostics(&file, 3, |l| !l.is_empty());
    assert_eq!(codes(&list), ["W0102"]);
    assert_eq!(list[0]["severity"], 2);
    assert_eq!(list[0]["range"], range(2, 0, 2, 32));
    let related = &list[0]["relatedInformation"][0];
    assert_eq!(related["location"]["uri"], file.as_str());
    assert_eq!(
        related["location"]["range"]["start"],
        json!({ "line": 0, "character": 0 })
    );
    assert_eq!(related["message"], "so does this one");

    // Closing the document clears its diagnostics.
    client.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": file } }),
    );
    let cleared = client.wait(|m| {
        m["method"] == "textDocument/publishDiagnostics" && m["params"]["version"].is_null()
    });
    assert_eq!(cleared["params"]["diagnostics"], json!([]));
    client.shut_down();
}

/// A problem inside an imported module is shown on the `import`, pointing into the module.
#[test]
fn module_errors_show_on_the_import() {
    let (mut client, _) =
        Client::start_with("module", json!({}), &["--stdlib-dir", "lib"], |dir| {
            std::fs::create_dir_all(dir.join("lib")).expect("lib");
            std::fs::write(dir.join("lib/bad.grd"), "list x = [y]\n").expect("module");
        });
    let file = uri(&client.path("p.grd"));
    client.open(&file, "import \"bad\"\nguard x allow tty else kill\n");
    let list = client.diagnostics(&file, 1, |_| true);
    assert_eq!(codes(&list), ["E0600"]);
    assert_eq!(list[0]["range"], range(0, 0, 0, 12));
    let message = list[0]["message"].as_str().expect("message");
    assert!(
        message.starts_with("lib/bad.grd:1:11: unknown list `y`"),
        "{message}"
    );
    let related = &list[0]["relatedInformation"][0];
    assert_eq!(related["location"]["uri"], uri(&client.path("lib/bad.grd")));
    assert_eq!(related["location"]["range"], range(0, 10, 0, 11));
    client.shut_down();
}

#[test]
fn utf8_positions_when_the_client_offers_them() {
    let capabilities = json!({ "general": { "positionEncodings": ["utf-8", "utf-16"] } });
    let (mut client, init) = Client::start("utf8", capabilities);
    assert_eq!(init["capabilities"]["positionEncoding"], "utf-8");
    let file = uri(&client.path("two.grd"));
    client.open(&file, TWO_ERRORS);
    let list = client.diagnostics(&file, 1, |_| true);
    assert_eq!(list[0]["range"], range(0, 22, 0, 29));
    client.shut_down();
}

const POLICY: &str = "import \"k8s\"\n\
\n\
# The application: PID 1 of its container.\n\
macro app = image(pid1, \"python app.py\")\n\
\n\
rule \"token\"\n\
guard read k8s_sa_token allow app else kill\n\
    alert critical \"token read by %proc.cmdline\"\n";

#[test]
fn hover_definition_completion_and_formatting() {
    let snippets = json!({ "textDocument": { "completion": { "completionItem": { "snippetSupport": true } } } });
    let (mut client, _) = Client::start("features", snippets);
    let file = uri(&client.path("token.grd"));
    client.open(&file, POLICY);
    assert_eq!(client.diagnostics(&file, 1, |_| true), Vec::<Value>::new());

    // Hover: a stdlib list's comment, a macro's, a function, a field, a priority.
    let hover = |client: &mut Client, line, character| {
        let h = client.at("textDocument/hover", &file, line, character);
        h["contents"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let list = hover(&mut client, 6, 14);
    assert!(list.contains("list k8s_sa_token = ["), "{list}");
    assert!(list.contains("service-account volume"), "{list}");
    assert!(list.contains("from module `k8s`"), "{list}");
    let h = client.at("textDocument/hover", &file, 6, 14);
    assert_eq!(h["range"], range(6, 11, 6, 23));
    assert!(hover(&mut client, 6, 31).contains("PID 1 of its container"));
    assert!(hover(&mut client, 3, 13).contains("image(pid1 | any, \"CMDLINE\")"));
    assert!(hover(&mut client, 3, 19).contains("`pid1`"));
    assert!(hover(&mut client, 7, 36).contains("`%proc.cmdline`: the process's command line"));
    assert!(hover(&mut client, 7, 12).contains("Falco priority `Critical`"));
    assert!(hover(&mut client, 0, 9).contains("module `k8s`"));
    assert!(hover(&mut client, 6, 2).contains("a rule"));
    assert_eq!(client.at("textDocument/hover", &file, 1, 0), Value::Null);

    // Definition: the macro in the file; the list and the import in the standard library,
    // written out read-only under the cache directory.
    let here = client.at("textDocument/definition", &file, 6, 31);
    assert_eq!(here["uri"], file.as_str());
    assert_eq!(here["range"], range(3, 6, 3, 9));
    let there = client.at("textDocument/definition", &file, 6, 14);
    let module = there["uri"].as_str().expect("uri").to_string();
    let cache = uri(&client.path("cache/guard"));
    assert!(
        module.starts_with(&cache) && module.ends_with("/k8s.grd"),
        "{module}"
    );
    let path = PathBuf::from(module.trim_start_matches("file://"));
    let text = std::fs::read_to_string(&path).expect("module written");
    let line = there["range"]["start"]["line"].as_u64().expect("line") as usize;
    assert!(
        text.lines()
            .nth(line)
            .expect("line")
            .starts_with("list k8s_sa_token")
    );
    assert!(
        std::fs::metadata(&path)
            .expect("meta")
            .permissions()
            .readonly()
    );
    let import = client.at("textDocument/definition", &file, 0, 9);
    assert_eq!(import["uri"], module.as_str());
    // The written-out module, opened, checks clean as a module (no "no rules" error).
    client.open(&module, &text);
    assert_eq!(
        client.diagnostics(&module, 1, |_| true),
        Vec::<Value>::new()
    );

    // Completion in context.
    let labels = |items: &Value| -> Vec<String> {
        items
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["label"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let mut version = 1;
    let mut edit_and_complete = |client: &mut Client, text: &str, line, character| {
        version += 1;
        client.change(&file, version, json!([{ "text": text }]));
        client.at("textDocument/completion", &file, line, character)
    };
    let operand = edit_and_complete(&mut client, "macro app = tty\nguard /a allow \n", 1, 15);
    let names = labels(&operand);
    for expected in [
        "ancestor",
        "k8s_namespace",
        "tty",
        "not",
        "app",
        "shell_process",
    ] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} not in {names:?}"
        );
    }
    assert!(!names.contains(&"guard".to_string()));
    let ancestor = operand
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["label"] == "ancestor")
        .expect("ancestor");
    assert_eq!(ancestor["insertTextFormat"], 2);
    assert_eq!(
        ancestor["textEdit"]["newText"],
        "ancestor(${1|pid1,any|}, \"$2\")"
    );
    // `shell_process` is in module `shells`, not imported yet: completing it imports it.
    let shell = operand
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["label"] == "shell_process")
        .expect("shell_process");
    assert_eq!(
        shell["additionalTextEdits"],
        json!([{ "range": range(0, 0, 0, 0), "newText": "import \"shells\"\n" }])
    );
    let fields = edit_and_complete(
        &mut client,
        "guard /a allow tty else alert info \"%proc.\"\n",
        0,
        42,
    );
    assert!(labels(&fields).contains(&"proc.cmdline".to_string()));
    let edit = &fields[0]["textEdit"]["range"];
    assert_eq!(edit, &range(0, 37, 0, 42));
    let priorities = edit_and_complete(&mut client, "guard /a allow tty else alert \n", 0, 30);
    assert!(labels(&priorities).contains(&"critical".to_string()));
    let actions = edit_and_complete(&mut client, "guard /a allow tty else \n", 0, 24);
    assert_eq!(labels(&actions), ["kill", "deny", "alert"]);
    let modules = edit_and_complete(&mut client, "import \"\"\n", 0, 8);
    assert!(labels(&modules).contains(&"k8s".to_string()));
    // An ancestor's executable: `exe` is offered as `ancestor`'s second argument.
    let second = edit_and_complete(&mut client, "guard /a allow ancestor(any, )\n", 0, 29);
    assert_eq!(labels(&second), ["exe"]);
    let items = edit_and_complete(&mut client, "\n", 0, 0);
    assert_eq!(labels(&items), ["guard", "rule", "list", "macro", "import"]);

    // Formatting: the canonical layout, as `guardc fmt` prints it.
    version += 1;
    let messy = "guard  /a   allow tty else kill\n";
    client.change(&file, version, json!([{ "text": messy }]));
    let edits = client.request("textDocument/formatting", json!({ "textDocument": { "uri": file }, "options": { "tabSize": 4, "insertSpaces": true } }));
    assert_eq!(
        edits,
        json!([{ "range": range(0, 0, 1, 0), "newText": "guard /a allow tty else kill\n" }])
    );
    client.shut_down();
}

#[test]
fn malformed_input_never_kills_the_server() {
    let (mut client, _) = Client::start("malformed", json!({}));
    let file = uri(&client.path("bad.grd"));
    let nested = format!("guard /a allow {}tty else kill\n", "not (".repeat(5000));
    let texts = [
        "\u{0}\u{1}\"'\\ ]]][[[ guard guard ( ) , = %%%",
        "guard /a allow tty else alert critical \"%",
        nested.as_str(),
        "list = [ macro x = guard",
        "é𝄞\r\n\r\nguard \"unterminated",
    ];
    client.open(&file, "");
    for (i, text) in texts.iter().enumerate() {
        let version = i as i64 + 2;
        client.change(&file, version, json!([{ "text": text }]));
        let list = client.diagnostics(&file, version, |_| true);
        assert!(!list.is_empty(), "no diagnostics for {text:?}");
        // Requests anywhere, including past the end and inside characters.
        for (line, character) in [
            (0, 0),
            (0, 1),
            (0, 3),
            (0, 40),
            (7, 99),
            (u32::MAX, u32::MAX),
        ] {
            for method in [
                "textDocument/hover",
                "textDocument/definition",
                "textDocument/completion",
            ] {
                client.at(method, &file, line, character);
            }
        }
        client.request("textDocument/formatting", json!({ "textDocument": { "uri": file }, "options": { "tabSize": 4, "insertSpaces": true } }));
    }
    // Edits with ranges out of bounds or backwards are clamped, not fatal.
    client.change(&file, 100, json!([{ "range": range(9, 9, 0, 0), "text": "x" }, { "range": range(0, 99, 99, 0), "text": "" }]));
    client.diagnostics(&file, 100, |_| true);
    // Bad requests get errors, not a dead server.
    let bad = client.call("textDocument/hover", json!({ "nonsense": true }));
    assert_eq!(bad.expect_err("invalid params")["code"], -32602);
    let unknown = client.call("textDocument/unheardOf", json!({}));
    assert_eq!(unknown.expect_err("unknown method")["code"], -32601);
    // A document nobody opened: nothing to say.
    let other = uri(&client.path("never-opened.grd"));
    assert_eq!(client.at("textDocument/hover", &other, 0, 0), Value::Null);
    client.shut_down();
}
