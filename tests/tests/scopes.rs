//! Container and Kubernetes scopes, and `user("name")`, judged in the kernel with real
//! processes. Root, this kernel.
//!
//! The node's container runtimes are stood in for by state directories shaped like
//! containerd's, CRI-O's and Docker's (an OCI `config.json` with the CRI annotations per
//! container; Docker's `config.v2.json`), and by cgroups named the way the runtimes name
//! theirs under the systemd driver. Processes are moved into those cgroups exactly as a
//! runtime moves a container's first process, so the kernel sees what it would see on a
//! Kubernetes node.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use guard_tests::agent::{self, Agent};
use guard_tests::scenario::shell_status;
use serde_json::{Value, json};

fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

/// `cat file` run in `cgroup` (or where the test runs), as uid `uid` (or root).
fn cat(cgroup: Option<&Path>, uid: Option<u32>, file: &Path) -> Option<i32> {
    let enter = cgroup.map_or(String::new(), |c| {
        format!("echo $$ > {}/cgroup.procs && ", c.display())
    });
    let run = match uid {
        Some(u) => format!(
            "exec python3 -c 'import os; os.setgid({u}); os.setuid({u}); os.execvp(\"cat\", [\"cat\", \"{}\"])' >/dev/null",
            file.display()
        ),
        None => format!("exec cat {} >/dev/null", file.display()),
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{enter}{run}"))
        .output()
        .expect("sh runs");
    shell_status(out.status)
}

fn id(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn write_json(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("state dir");
    std::fs::write(path, serde_json::to_vec_pretty(v).expect("json")).expect("state file");
}

/// An OCI bundle config as containerd's CRI plugin writes it (the parts guard reads, and some
/// it does not, as on a node).
fn containerd_container(state: &Path, id: &str, ns: &str, pod: &str, name: &str, image: &str) {
    write_json(
        &state.join("k8s.io").join(id).join("config.json"),
        &json!({
            "ociVersion": "1.1.0",
            "process": {"args": ["/bin/app"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "annotations": {
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.container-name": name,
                "io.kubernetes.cri.image-name": image,
                "io.kubernetes.cri.sandbox-id": "f".repeat(64),
                "io.kubernetes.cri.sandbox-name": pod,
                "io.kubernetes.cri.sandbox-namespace": ns,
                "io.kubernetes.cri.sandbox-uid": "0d0c3a9e-5b1c-4c7e-9f1d-2a3b4c5d6e7f"
            },
            "linux": {"cgroupsPath": format!("kubepods-besteffort-pod1.slice:cri-containerd:{id}")}
        }),
    );
}

#[test]
fn container_namespace_label_and_user_scopes_are_enforced() {
    if !guard_tests::require_kernel_tests("scopes") {
        return;
    }
    let Some(cg_root) = cgroup2_root() else {
        if std::env::var_os("CI").is_some() {
            panic!("scopes: no cgroup v2 hierarchy is mounted");
        }
        eprintln!("skip: scopes: no cgroup v2 hierarchy is mounted");
        return;
    };
    let _kernel = guard_tests::kernel_lock();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("guard-scopes-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["ns", "label", "ctr", "user"] {
        std::fs::create_dir_all(dir.join(d)).expect("dir");
        std::fs::write(dir.join(d).join("f"), "secret").expect("file");
    }
    // The uid-4242 reader must be able to traverse to the files.
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&dir)
        .status()
        .expect("chmod");

    // Three containers: a containerd one in namespace `payments`, a CRI-O one in a pod
    // labelled app=web, a docker one named `tools`.
    let (vault, web, web_pod, tools, late) = (id('a'), id('b'), id('c'), id('d'), id('e'));
    let state = dir.join("state");
    let (containerd, crio, docker) = (
        state.join("containerd"),
        state.join("crio"),
        state.join("docker"),
    );
    containerd_container(
        &containerd,
        &vault,
        "payments",
        "vault-0",
        "vault",
        "docker.io/hashicorp/vault:1.15",
    );
    let crio_labels = |extra: &Value| {
        let mut labels = json!({
            "io.kubernetes.pod.name": "web-1",
            "io.kubernetes.pod.namespace": "default",
            "io.kubernetes.pod.uid": "5e7d3c1a"
        });
        for (k, v) in extra.as_object().expect("object") {
            labels[k] = v.clone();
        }
        labels.to_string()
    };
    write_json(
        &crio.join(&web_pod).join("userdata/config.json"),
        &json!({"ociVersion": "1.0.2", "annotations": {
            "io.kubernetes.cri-o.ContainerType": "sandbox",
            "io.kubernetes.container.name": "POD",
            "io.kubernetes.pod.name": "web-1",
            "io.kubernetes.pod.namespace": "default",
            "io.kubernetes.cri-o.Labels": crio_labels(&json!({"app": "web", "tier": "frontend"}))
        }}),
    );
    write_json(
        &crio.join(&web).join("userdata/config.json"),
        &json!({"ociVersion": "1.0.2", "annotations": {
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.cri-o.SandboxID": web_pod,
            "io.kubernetes.container.name": "web",
            "io.kubernetes.pod.name": "web-1",
            "io.kubernetes.pod.namespace": "default",
            "io.kubernetes.cri-o.ImageName": "quay.io/team/web:2.3",
            "io.kubernetes.cri-o.Labels": crio_labels(&json!({"io.kubernetes.container.name": "web"}))
        }}),
    );
    write_json(
        &docker.join(&tools).join("config.v2.json"),
        &json!({"ID": tools, "Name": "/tools", "Config": {"Image": "busybox:1.36", "Labels": {}}}),
    );
    let passwd = dir.join("passwd");
    std::fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/sh\nguardtest:x:4242:4242::/:/bin/false\n",
    )
    .expect("passwd");

    let top = cg_root.join(format!("guard-scopes-{pid}.slice"));
    let cg = |name: String| {
        let p = top.join(name);
        std::fs::create_dir_all(&p).expect("a cgroup v2 directory can be created");
        p
    };
    let cg_vault = cg(format!("cri-containerd-{vault}.scope"));
    let cg_web = cg(format!("crio-{web}.scope"));
    let cg_tools = cg(format!("docker-{tools}.scope"));

    let policy = dir.join("scopes.grd");
    let d = dir.display();
    std::fs::write(
        &policy,
        format!(
            "guard {d}/ns/* allow k8s_namespace(\"payments\") else kill alert critical \"%proc.name (parent %proc.pname) in %k8s.ns.name\"\n\
             guard {d}/label/* allow pod_label(\"app=web\") else kill\n\
             guard {d}/ctr/* allow container(\"tools\") else kill\n\
             guard {d}/user/* allow user(\"guardtest\") else kill\n"
        ),
    )
    .expect("policy");
    let object = agent::temp_object("scopes");
    agent::compile(&policy, &object).expect("compiles");
    let dir_arg = |p: &Path| p.to_str().expect("utf-8").to_string();
    let args = [
        "--json".to_string(),
        "--containerd-state".into(),
        dir_arg(&containerd),
        "--crio-state".into(),
        dir_arg(&crio),
        "--docker-state".into(),
        dir_arg(&docker),
        "--passwd".into(),
        dir_arg(&passwd),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::start(&object, &args, false).expect("loads");
    assert!(
        agent
            .stderr()
            .iter()
            .any(|l| l.contains("user `guardtest` is uid 4242")),
        "{:?}",
        agent.stderr()
    );
    let f = |d: &str| dir.join(d).join("f");

    // k8s_namespace: the payments container reads; another pod's container and the host die.
    assert_eq!(cat(Some(&cg_vault), None, &f("ns")), Some(0));
    assert_eq!(cat(Some(&cg_web), None, &f("ns")), Some(137));
    assert_eq!(cat(None, None, &f("ns")), Some(137));
    // pod_label: from the CRI-O sandbox's labels; containerd records none, so not in scope.
    assert_eq!(cat(Some(&cg_web), None, &f("label")), Some(0));
    assert_eq!(cat(Some(&cg_vault), None, &f("label")), Some(137));
    // container: by name.
    assert_eq!(cat(Some(&cg_tools), None, &f("ctr")), Some(0));
    assert_eq!(cat(Some(&cg_vault), None, &f("ctr")), Some(137));
    // user: the name resolved on the node.
    assert_eq!(cat(None, Some(4242), &f("user")), Some(0));
    assert_eq!(cat(None, None, &f("user")), Some(137));
    // A shell that runs cat as its child (not exec): the alert names the shell as the parent.
    let sh = Command::new("sh")
        .arg("-c")
        .arg(format!("cat {} >/dev/null; true", f("ns").display()))
        .status()
        .expect("sh runs");
    assert!(sh.success(), "the shell outlives its killed child");

    // A pod scheduled after the load joins its namespace's scope within the refresh period.
    containerd_container(
        &containerd,
        &late,
        "payments",
        "vault-1",
        "vault",
        "docker.io/hashicorp/vault:1.15",
    );
    let cg_late = cg(format!("cri-containerd-{late}.scope"));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        cat(Some(&cg_late), None, &f("ns")),
        Some(0),
        "the new container joined the namespace scope"
    );

    let alerts = agent.wait_alerts(6, Duration::from_secs(5));
    let _ = agent.stop();
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|a| serde_json::from_str(a).expect("JSON"))
        .collect();
    let field = |a: &Value, k: &str| a["output_fields"][k].clone();
    let summary: Vec<(String, Value)> = alerts
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap_or("").to_string(),
                field(a, "container.id"),
            )
        })
        .collect();
    let short = |id: &str| Value::from(&id[..12]);
    assert_eq!(
        summary,
        vec![
            (format!("guard {d}/ns/*"), short(&web)),
            (format!("guard {d}/ns/*"), Value::from("host")),
            (format!("guard {d}/label/*"), short(&vault)),
            (format!("guard {d}/ctr/*"), short(&vault)),
            (format!("guard {d}/user/*"), Value::from("host")),
            (format!("guard {d}/ns/*"), Value::from("host")),
        ],
        "{alerts:#?}"
    );
    // The alert about the CRI-O container names it, its image and its pod, in the text suffix
    // Falco appends and in the JSON fields a rule's template can use.
    let web_alert = &alerts[0];
    let output = web_alert["output"].as_str().unwrap_or("");
    for part in [
        format!("container_id={}", &web[..12]),
        "container_name=web".into(),
        "container_image_repository=quay.io/team/web".into(),
        "container_image_tag=2.3".into(),
        "k8s_pod_name=web-1".into(),
        "k8s_ns_name=default".into(),
    ] {
        assert!(output.contains(&part), "`{part}` missing in {output}");
    }
    assert_eq!(field(&alerts[5], "proc.pname"), "sh", "{}", alerts[5]);
    assert_eq!(field(&alerts[5], "k8s.ns.name"), Value::Null);
    assert_eq!(field(web_alert, "k8s.ns.name"), "default");
    let vault_alert = &alerts[2];
    assert!(
        vault_alert["output"]
            .as_str()
            .unwrap_or("")
            .contains("container_name=vault container_image_repository=docker.io/hashicorp/vault container_image_tag=1.15 k8s_pod_name=vault-0 k8s_ns_name=payments"),
        "{vault_alert}"
    );

    // A user the node does not know refuses the load, naming the user.
    std::fs::write(
        &policy,
        format!("guard {d}/user/* allow user(\"nosuchuser\") else kill\n"),
    )
    .expect("policy");
    agent::compile(&policy, &object).expect("compiles");
    let refused = Agent::start(&object, &args, false);
    let err = refused.err().expect("the load is refused").to_string();
    assert!(
        err.contains("user `nosuchuser`") && err.contains("refusing to load"),
        "{err}"
    );

    for c in [&cg_vault, &cg_web, &cg_tools, &cg_late] {
        let _ = std::fs::remove_dir(c);
    }
    let _ = std::fs::remove_dir(&top);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(object);
}
