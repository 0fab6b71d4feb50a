//! The containers on this node, as their runtimes describe them on disk.
//!
//! Falco takes pod names and namespaces from the container runtime's own records rather than
//! from the API server, and so does guard: no credentials, no network, and the answer is there
//! as soon as the runtime created the container (the OCI bundle is written before the
//! container's first process runs). Three layouts are read:
//!
//! - containerd: `<state>/<namespace>/<id>/config.json` (the OCI bundle; the CRI plugin's
//!   annotations `io.kubernetes.cri.*`). containerd does not record pod labels there.
//! - CRI-O: `<state>/<id>/userdata/config.json` (annotations `io.kubernetes.*` and
//!   `io.kubernetes.cri-o.*`; the pod sandbox's `io.kubernetes.cri-o.Labels` holds the pod's
//!   labels).
//! - Docker: `<state>/<id>/config.v2.json` (name, image and labels; pods run through
//!   cri-dockerd carry `io.kubernetes.*` labels).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// What guard knows about one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The full id (64 hex digits).
    pub id: String,
    pub name: Option<String>,
    pub image_repository: Option<String>,
    pub image_tag: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    /// The pod's labels; `None` when the runtime does not record them (containerd).
    pub pod_labels: Option<BTreeMap<String, String>>,
    /// Which runtime described it ("containerd", "cri-o", "docker").
    pub runtime: &'static str,
}

impl ContainerInfo {
    /// Falco's `container.id`: the first 12 hex digits.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }
}

/// Where each runtime keeps its per-container state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDirs {
    pub containerd: PathBuf,
    pub crio: PathBuf,
    pub docker: PathBuf,
}

impl Default for StateDirs {
    fn default() -> Self {
        StateDirs {
            containerd: "/run/containerd/io.containerd.runtime.v2.task".into(),
            crio: "/run/containers/storage/overlay-containers".into(),
            docker: "/var/lib/docker/containers".into(),
        }
    }
}

/// The runtimes' records, read once per container (a container's bundle does not change
/// while it exists) and forgotten when its state directory goes away.
#[derive(Debug)]
pub struct ContainerCache {
    dirs: StateDirs,
    infos: HashMap<String, ContainerInfo>,
    /// CRI-O workload container → its pod sandbox.
    crio_sandbox: HashMap<String, String>,
    /// CRI-O pod sandbox → the pod's labels.
    crio_labels: HashMap<String, BTreeMap<String, String>>,
}

impl ContainerCache {
    pub fn new(dirs: StateDirs) -> ContainerCache {
        ContainerCache {
            dirs,
            infos: HashMap::new(),
            crio_sandbox: HashMap::new(),
            crio_labels: HashMap::new(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&ContainerInfo> {
        self.infos.get(id)
    }

    pub fn all(&self) -> &HashMap<String, ContainerInfo> {
        &self.infos
    }

    /// Reads the records of containers that appeared and drops those of containers that are
    /// gone. Unreadable or malformed records are skipped and tried again next time (a
    /// container being created while we read).
    pub fn refresh(&mut self) {
        let mut present = std::collections::HashSet::new();
        for ns in subdirs(&self.dirs.containerd) {
            for dir in subdirs(&ns) {
                let Some(id) = dir_id(&dir) else { continue };
                present.insert(id.clone());
                if self.infos.contains_key(&id) {
                    continue;
                }
                if let Some(info) =
                    read_json(&dir.join("config.json")).and_then(|c| containerd(id, &c))
                {
                    self.infos.insert(info.id.clone(), info);
                }
            }
        }
        for dir in subdirs(&self.dirs.crio) {
            let Some(id) = dir_id(&dir) else { continue };
            present.insert(id.clone());
            if self.infos.contains_key(&id) {
                continue;
            }
            let Some(config) = read_json(&dir.join("userdata/config.json")) else {
                continue;
            };
            let (info, sandbox, labels) = crio(id, &config);
            if let Some(labels) = labels {
                self.crio_labels.insert(info.id.clone(), labels);
            }
            if let Some(sandbox) = sandbox {
                self.crio_sandbox.insert(info.id.clone(), sandbox);
            }
            self.infos.insert(info.id.clone(), info);
        }
        for dir in subdirs(&self.dirs.docker) {
            let Some(id) = dir_id(&dir) else { continue };
            present.insert(id.clone());
            if self.infos.contains_key(&id) {
                continue;
            }
            if let Some(info) = read_json(&dir.join("config.v2.json")).and_then(|c| docker(id, &c))
            {
                self.infos.insert(info.id.clone(), info);
            }
        }
        self.infos.retain(|id, _| present.contains(id));
        self.crio_sandbox.retain(|id, _| present.contains(id));
        self.crio_labels.retain(|id, _| present.contains(id));
        // A CRI-O container's pod labels are its sandbox's (a sandbox may be read after its
        // containers, so this runs over all of them each time).
        for (id, sandbox) in &self.crio_sandbox {
            if let Some(info) = self.infos.get_mut(id) {
                info.pod_labels = self.crio_labels.get(sandbox).cloned();
            }
        }
    }
}

/// Every container the runtimes describe, by full id.
pub fn scan(dirs: &StateDirs) -> HashMap<String, ContainerInfo> {
    let mut cache = ContainerCache::new(dirs.clone());
    cache.refresh();
    cache.infos
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn dir_id(dir: &Path) -> Option<String> {
    let id = dir.file_name()?.to_str()?;
    is_container_id(id).then(|| id.to_string())
}

/// A full container id: 64 lower-case hex digits.
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn annotation<'v>(config: &'v Value, key: &str) -> Option<&'v str> {
    config.get("annotations")?.get(key)?.as_str()
}

fn owned(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

fn containerd(id: String, config: &Value) -> Option<ContainerInfo> {
    let a = |k: &str| owned(annotation(config, k));
    let (image_repository, image_tag) = split_image(a("io.kubernetes.cri.image-name"));
    Some(ContainerInfo {
        id,
        name: a("io.kubernetes.cri.container-name"),
        image_repository,
        image_tag,
        pod_name: a("io.kubernetes.cri.sandbox-name"),
        pod_namespace: a("io.kubernetes.cri.sandbox-namespace"),
        pod_labels: None,
        runtime: "containerd",
    })
}

/// The container, its sandbox's id (for a workload container) and, for a sandbox, the pod's
/// labels.
type CrioRecord = (
    ContainerInfo,
    Option<String>,
    Option<BTreeMap<String, String>>,
);

fn crio(id: String, config: &Value) -> CrioRecord {
    let a = |k: &str| owned(annotation(config, k));
    let labels: Option<BTreeMap<String, String>> =
        annotation(config, "io.kubernetes.cri-o.Labels").and_then(|l| serde_json::from_str(l).ok());
    let is_sandbox = a("io.kubernetes.cri-o.ContainerType").as_deref() == Some("sandbox");
    let (image_repository, image_tag) =
        split_image(a("io.kubernetes.cri-o.ImageName").or_else(|| a("io.kubernetes.cri-o.Image")));
    let info = ContainerInfo {
        id,
        // The sandbox's name is the pod's; Kubernetes shows the pause container as `POD`.
        name: a("io.kubernetes.container.name"),
        image_repository,
        image_tag,
        pod_name: a("io.kubernetes.pod.name"),
        pod_namespace: a("io.kubernetes.pod.namespace"),
        pod_labels: if is_sandbox { labels.clone() } else { None },
        runtime: "cri-o",
    };
    let sandbox = if is_sandbox {
        None
    } else {
        a("io.kubernetes.cri-o.SandboxID")
    };
    (info, sandbox, if is_sandbox { labels } else { None })
}

fn docker(id: String, config: &Value) -> Option<ContainerInfo> {
    let cfg = config.get("Config");
    let labels: BTreeMap<String, String> = cfg
        .and_then(|c| c.get("Labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    let label = |k: &str| owned(labels.get(k).map(String::as_str));
    let (image_repository, image_tag) = split_image(owned(
        cfg.and_then(|c| c.get("Image")).and_then(Value::as_str),
    ));
    let docker_name = owned(config.get("Name").and_then(Value::as_str))
        .map(|n| n.trim_start_matches('/').to_string());
    let pod_name = label("io.kubernetes.pod.name");
    Some(ContainerInfo {
        id,
        name: label("io.kubernetes.container.name").or(docker_name),
        image_repository,
        image_tag,
        pod_namespace: label("io.kubernetes.pod.namespace"),
        // Outside Kubernetes a docker container has no pod, so no pod labels either.
        pod_labels: pod_name.as_ref().map(|_| BTreeMap::new()),
        pod_name,
        runtime: "docker",
    })
}

/// `registry:5000/team/app:1.2@sha256:…` → (`registry:5000/team/app`, `1.2`). The tag is
/// after the last `:` of the last path component; a digest-only reference has no tag.
pub fn split_image(image: Option<String>) -> (Option<String>, Option<String>) {
    let Some(image) = image else {
        return (None, None);
    };
    let without_digest = image.split('@').next().unwrap_or(&image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (
                Some(without_digest[..at].to_string()),
                Some(without_digest[at + 1..].to_string()),
            )
        }
        None => (Some(without_digest.to_string()), None),
    }
}

/// The container id a cgroup directory's name carries, for the layouts container runtimes
/// create: `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`,
/// `libpod-<id>.scope` (systemd driver) and a bare `<id>` (cgroupfs driver). CRI-O's monitor
/// (`crio-conmon-<id>.scope`) is not the container.
pub fn container_id_of_cgroup(dir_name: &str) -> Option<&str> {
    let stem = dir_name.strip_suffix(".scope").unwrap_or(dir_name);
    let id = ["cri-containerd-", "crio-", "docker-", "libpod-"]
        .iter()
        .find_map(|p| stem.strip_prefix(p))
        .unwrap_or(stem);
    is_container_id(id).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_into_repository_and_tag() {
        let s = |i: &str| split_image(Some(i.to_string()));
        assert_eq!(
            s("docker.io/library/nginx:1.25"),
            (Some("docker.io/library/nginx".into()), Some("1.25".into()))
        );
        assert_eq!(
            s("localhost:5000/team/app"),
            (Some("localhost:5000/team/app".into()), None)
        );
        assert_eq!(
            s("registry:5000/app:v2@sha256:abc"),
            (Some("registry:5000/app".into()), Some("v2".into()))
        );
        assert_eq!(s("app@sha256:abc"), (Some("app".into()), None));
    }

    fn put(path: &Path, v: serde_json::Value) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, v.to_string()).unwrap();
    }

    #[test]
    fn reads_the_three_runtimes_layouts_and_forgets_removed_containers() {
        let root = std::env::temp_dir().join(format!("guard-ctr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dirs = StateDirs {
            containerd: root.join("containerd"),
            crio: root.join("crio"),
            docker: root.join("docker"),
        };
        let id = |c: char| std::iter::repeat_n(c, 64).collect::<String>();
        let (a, b, sb, d) = (id('a'), id('b'), id('c'), id('d'));
        put(
            &dirs.containerd.join("k8s.io").join(&a).join("config.json"),
            serde_json::json!({"annotations": {
                "io.kubernetes.cri.container-name": "vault",
                "io.kubernetes.cri.image-name": "docker.io/hashicorp/vault:1.15",
                "io.kubernetes.cri.sandbox-name": "vault-0",
                "io.kubernetes.cri.sandbox-namespace": "payments"}}),
        );
        // The workload container is read before its sandbox on some file systems; the
        // labels must reach it either way.
        put(
            &dirs.crio.join(&b).join("userdata/config.json"),
            serde_json::json!({"annotations": {
                "io.kubernetes.cri-o.ContainerType": "container",
                "io.kubernetes.cri-o.SandboxID": sb,
                "io.kubernetes.container.name": "web",
                "io.kubernetes.pod.name": "web-1",
                "io.kubernetes.pod.namespace": "default",
                "io.kubernetes.cri-o.ImageName": "quay.io/team/web:2.3"}}),
        );
        put(
            &dirs.crio.join(&sb).join("userdata/config.json"),
            serde_json::json!({"annotations": {
                "io.kubernetes.cri-o.ContainerType": "sandbox",
                "io.kubernetes.cri-o.Labels": "{\"app\":\"web\"}"}}),
        );
        put(
            &dirs.docker.join(&d).join("config.v2.json"),
            serde_json::json!({"Name": "/tools", "Config": {"Image": "busybox", "Labels": {}}}),
        );
        // Not container directories: ignored.
        std::fs::create_dir_all(dirs.docker.join("not-an-id")).unwrap();
        let mut cache = ContainerCache::new(dirs.clone());
        cache.refresh();
        let vault = cache.get(&a).unwrap();
        assert_eq!(vault.runtime, "containerd");
        assert_eq!(vault.name.as_deref(), Some("vault"));
        assert_eq!(vault.pod_namespace.as_deref(), Some("payments"));
        assert_eq!(vault.pod_name.as_deref(), Some("vault-0"));
        assert_eq!(vault.image_tag.as_deref(), Some("1.15"));
        assert_eq!(vault.pod_labels, None);
        let web = cache.get(&b).unwrap();
        assert_eq!(web.runtime, "cri-o");
        assert_eq!(
            web.pod_labels,
            Some(BTreeMap::from([("app".to_string(), "web".to_string())]))
        );
        assert_eq!(web.image_repository.as_deref(), Some("quay.io/team/web"));
        let tools = cache.get(&d).unwrap();
        assert_eq!(
            (
                tools.name.as_deref(),
                tools.image_tag.as_deref(),
                &tools.pod_labels
            ),
            (Some("tools"), None, &None)
        );
        assert_eq!(tools.short_id(), &d[..12]);
        assert_eq!(cache.all().len(), 4);
        std::fs::remove_dir_all(dirs.containerd.join("k8s.io").join(&a)).unwrap();
        cache.refresh();
        assert!(cache.get(&a).is_none());
        assert_eq!(cache.all().len(), 3);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn cgroup_names_give_container_ids() {
        let id = "3f2a9c1b7d0e".repeat(5) + "abcd";
        assert_eq!(
            container_id_of_cgroup(&format!("cri-containerd-{id}.scope")),
            Some(id.as_str())
        );
        assert_eq!(
            container_id_of_cgroup(&format!("crio-{id}.scope")),
            Some(id.as_str())
        );
        assert_eq!(container_id_of_cgroup(&id), Some(id.as_str()));
        assert_eq!(
            container_id_of_cgroup(&format!("crio-conmon-{id}.scope")),
            None
        );
        assert_eq!(container_id_of_cgroup("kubepods-besteffort.slice"), None);
        assert_eq!(container_id_of_cgroup("user.slice"), None);
    }
}
