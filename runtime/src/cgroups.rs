//! The cgroup v2 hierarchy. A cgroup's id, as `bpf_get_current_cgroup_id` returns it, is its
//! directory's inode number; [`crate::scope`] walks the tree to map ids to scopes.

use std::path::PathBuf;

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
