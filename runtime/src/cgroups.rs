//! The cgroups a policy's `cgroup("/path")` subjects name, as the kernel sees them: every
//! cgroup v2 directory at or below each path, by id (the directory's inode number is the
//! cgroup id `bpf_get_current_cgroup_id` returns).
//!
//! New cgroups appear all the time (a pod starts): the agent rescans every second and adds
//! their ids. Until a new cgroup is added, a process in it is outside every scope: refused by
//! rules that allow only a scope (closed), allowed by rules that exclude one (stated in the
//! book).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` on unified hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones).
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, at, ty) = (f.next(), f.next()?, f.next()?);
        (ty == "cgroup2").then(|| PathBuf::from(at))
    })
}

/// cgroup id → bit mask, for the paths (bit `i` = `paths[i]`) under `root`.
pub fn scan(root: &Path, paths: &[String]) -> HashMap<u64, u64> {
    let mut out: HashMap<u64, u64> = HashMap::new();
    for (i, p) in paths.iter().enumerate().take(64) {
        let start = root.join(p.trim_start_matches('/'));
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            // A cgroup removed while we walk is simply gone.
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            *out.entry(meta.ino()).or_default() |= 1u64 << i;
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
        }
    }
    out
}

/// The paths that do not exist under `root` (reported loudly at load).
pub fn missing(root: &Path, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .filter(|p| !root.join(p.trim_start_matches('/')).is_dir())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_subtrees_with_their_bits() {
        let root = std::env::temp_dir().join(format!("guard-cg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::create_dir_all(root.join("d")).unwrap();
        let ino = |p: &str| std::fs::metadata(root.join(p)).unwrap().ino();
        let got = scan(&root, &["/a/b".into(), "/a".into(), "/nope".into()]);
        assert_eq!(got.get(&ino("a/b/c")), Some(&0b11));
        assert_eq!(got.get(&ino("a/b")), Some(&0b11));
        assert_eq!(got.get(&ino("a")), Some(&0b10));
        assert_eq!(got.get(&ino("d")), None);
        assert_eq!(
            missing(&root, &["/a".into(), "/nope".into()]),
            vec!["/nope"]
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
