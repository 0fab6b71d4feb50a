//! A policy's scopes resolved to cgroups: which cgroup ids each `cgroup(…)`, `container(…)`,
//! `k8s_namespace(…)` and `pod_label(…)` covers on this node right now, and which container
//! each cgroup belongs to (for the alerts' container and pod fields).
//!
//! The whole cgroup v2 tree is walked: a container's cgroup is recognised by its name (see
//! [`containers::container_id_of_cgroup`]), and every cgroup below it belongs to it too. The
//! kernel map holds only cgroups with at least one scope bit; a cgroup it does not hold is
//! outside every scope, which rules that allow only a scope treat as "refuse" (fail closed).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guard_ebpf::abi::{ContainerView, Scope};

use crate::alert::ContainerFields;
use crate::containers::{self, ContainerCache, ContainerInfo, StateDirs};

/// The scopes of a policy resolved against one moment's cgroup tree and containers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScopeView {
    /// cgroup id → scope bits (bit `i` = scope `i`), only for non-zero bits.
    pub bits: HashMap<u64, u64>,
    /// Every cgroup id of the tree → the full id of the container it is in (`None`: the host).
    pub containers: HashMap<u64, Option<String>>,
}

/// What a loaded policy needs to know about the node as it changes: the containers, and its
/// scopes resolved to cgroup ids.
pub struct NodeContext {
    root: Option<PathBuf>,
    scopes: Vec<Scope>,
    pub containers: ContainerCache,
    pub view: ScopeView,
    last_refresh: Option<Instant>,
}

impl NodeContext {
    /// Nothing is read until [`NodeContext::refresh`].
    pub fn new(root: Option<PathBuf>, scopes: Vec<Scope>, dirs: StateDirs) -> NodeContext {
        NodeContext {
            root,
            scopes,
            containers: ContainerCache::new(dirs),
            view: ScopeView::default(),
            last_refresh: None,
        }
    }

    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// Re-reads the containers and the cgroup tree.
    pub fn refresh(&mut self) {
        self.containers.refresh();
        if let Some(root) = &self.root {
            self.view = resolve(root, &self.scopes, self.containers.all());
        }
        self.last_refresh = Some(Instant::now());
    }

    /// The container fields of an alert about a task in cgroup `cgroup_id`. A cgroup the last
    /// walk did not see (a container that started since) triggers one more walk, at most ten
    /// a second, so that alerts about a fresh container still name it.
    pub fn container_fields(&mut self, cgroup_id: u64) -> ContainerFields {
        let stale = self
            .last_refresh
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if !self.view.containers.contains_key(&cgroup_id) && stale {
            self.refresh();
        }
        match self.view.containers.get(&cgroup_id) {
            Some(None) => ContainerFields {
                id: Some("host".into()),
                ..ContainerFields::default()
            },
            Some(Some(id)) => {
                let info = self.containers.get(id);
                let get =
                    |f: fn(&ContainerInfo) -> &Option<String>| info.and_then(|i| f(i).clone());
                ContainerFields {
                    id: Some(id.get(..12).unwrap_or(id).to_string()),
                    name: get(|i| &i.name),
                    image_repository: get(|i| &i.image_repository),
                    image_tag: get(|i| &i.image_tag),
                    pod_name: get(|i| &i.pod_name),
                    pod_namespace: get(|i| &i.pod_namespace),
                }
            }
            // Gone before we could look (a killed process's cgroup removed at once).
            None => ContainerFields::default(),
        }
    }
}

/// Walks the cgroup tree under `root`.
pub fn resolve(root: &Path, scopes: &[Scope], known: &HashMap<String, ContainerInfo>) -> ScopeView {
    let mut view = ScopeView::default();
    // (directory, path relative to root, bits inherited from cgroup(…) scopes, container)
    let mut stack: Vec<(PathBuf, String, u64, Option<String>)> =
        vec![(root.to_path_buf(), "/".to_string(), 0, None)];
    while let Some((dir, rel, inherited, container)) = stack.pop() {
        // A cgroup removed while we walk is simply gone.
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let container = container.or_else(|| {
            (rel != "/")
                .then(|| containers::container_id_of_cgroup(name))
                .flatten()
                .map(str::to_string)
        });
        let mut path_bits = inherited;
        let mut bits = 0u64;
        for (i, scope) in scopes.iter().enumerate().take(64) {
            let hit = match scope {
                Scope::Cgroup { path } => {
                    if *path == rel {
                        path_bits |= 1 << i;
                    }
                    false
                }
                other => container
                    .as_deref()
                    .is_some_and(|id| container_matches(other, id, known.get(id))),
            };
            if hit {
                bits |= 1 << i;
            }
        }
        bits |= path_bits;
        if bits != 0 {
            view.bits.insert(meta.ino(), bits);
        }
        view.containers.insert(meta.ino(), container.clone());
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let child = e.file_name().to_string_lossy().into_owned();
                    let rel = if rel == "/" {
                        format!("/{child}")
                    } else {
                        format!("{rel}/{child}")
                    };
                    stack.push((e.path(), rel, path_bits, container.clone()));
                }
            }
        }
    }
    view
}

/// Whether container `id` (described by `info`, if its runtime's records were found) is in
/// a container or Kubernetes scope.
pub fn container_matches(scope: &Scope, id: &str, info: Option<&ContainerInfo>) -> bool {
    scope.holds_for(&ContainerView {
        id,
        name: info.and_then(|i| i.name.as_deref()),
        namespace: info.and_then(|i| i.pod_namespace.as_deref()),
        labels: info.and_then(|i| i.pod_labels.as_ref()),
    })
}

/// The container scopes no container on the node matches now (reported loudly at load), and
/// whether a `pod_label(…)` scope meets containers whose runtime keeps no labels.
pub fn unmatched(
    scopes: &[Scope],
    view: &ScopeView,
    known: &HashMap<String, ContainerInfo>,
) -> (Vec<usize>, usize) {
    let unmatched = scopes
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            !matches!(s, Scope::Cgroup { .. }) && !view.bits.values().any(|b| b & (1 << i) != 0)
        })
        .map(|(i, _)| i)
        .collect();
    let uses_labels = scopes.iter().any(|s| matches!(s, Scope::PodLabel { .. }));
    let unlabelled = if uses_labels {
        let mut ids: Vec<&String> = view.containers.values().flatten().collect();
        ids.sort();
        ids.dedup();
        ids.iter()
            .filter(|id| {
                known
                    .get(id.as_str())
                    .is_none_or(|i| i.pod_labels.is_none())
            })
            .count()
    } else {
        0
    };
    (unmatched, unlabelled)
}

/// The cgroup paths of `cgroup(…)` scopes that do not exist under `root`.
pub fn missing_cgroups(root: &Path, scopes: &[Scope]) -> Vec<String> {
    scopes
        .iter()
        .filter_map(|s| match s {
            Scope::Cgroup { path } if !root.join(path.trim_start_matches('/')).is_dir() => {
                Some(path.clone())
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_subtrees_and_containers_get_their_bits() {
        let root = std::env::temp_dir().join(format!("guard-scope-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let web = "a".repeat(64);
        let db = "b".repeat(64);
        let web_cg = format!("kubepods.slice/pod1/cri-containerd-{web}.scope");
        let db_cg = format!("kubepods.slice/pod2/crio-{db}.scope");
        for d in ["a/b/c", "d", &format!("{web_cg}/inner"), &db_cg] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let ino = |p: &str| std::fs::metadata(root.join(p)).unwrap().ino();
        let mut known = HashMap::new();
        known.insert(
            web.clone(),
            ContainerInfo {
                id: web.clone(),
                name: Some("web".into()),
                pod_namespace: Some("payments".into()),
                runtime: "containerd",
                ..Default::default()
            },
        );
        let scopes = [
            Scope::Cgroup {
                path: "/a/b".into(),
            },
            Scope::Cgroup { path: "/a".into() },
            Scope::K8sNamespace {
                names: vec!["payments".into()],
            },
            Scope::Container {
                names: vec![db[..12].to_string()],
            },
            Scope::Cgroup {
                path: "/kubepods.slice".into(),
            },
        ];
        let view = resolve(&root, &scopes, &known);
        assert_eq!(view.bits.get(&ino("a/b/c")), Some(&0b11));
        assert_eq!(view.bits.get(&ino("a")), Some(&0b10));
        assert_eq!(view.bits.get(&ino("d")), None);
        assert_eq!(view.bits.get(&ino(&web_cg)), Some(&0b10100));
        // Below a container's cgroup is still that container.
        assert_eq!(
            view.bits.get(&ino(&format!("{web_cg}/inner"))),
            Some(&0b10100)
        );
        assert_eq!(
            view.containers.get(&ino(&format!("{web_cg}/inner"))),
            Some(&Some(web.clone()))
        );
        // An id prefix matches without any runtime record.
        assert_eq!(view.bits.get(&ino(&db_cg)), Some(&0b11000));
        assert_eq!(view.containers.get(&ino("d")), Some(&None));
        assert_eq!(
            missing_cgroups(
                &root,
                &[Scope::Cgroup {
                    path: "/nope".into()
                }]
            ),
            vec!["/nope"]
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
