//! Where a case's processes run (cgroup, container, pod), and the scope bits `guard-run` would
//! write for them in the kernel's cgroup map.
//!
//! Containers match scopes with `guard-runtime`'s own rule ([`Scope::holds_for`]); a
//! `cgroup(…)` scope holds below its path, as `runtime/src/scope.rs`'s `resolve` walks the
//! cgroup tree (`tests/tests/sim_agreement.rs` checks the two agree). Only this user-space step
//! is modelled here: the programs look the bits up in the map and judge them themselves.

use std::collections::BTreeMap;

use guard_ebpf::abi::{ContainerView, Scope};

/// A container, as its runtime's records describe it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    /// The full id (hex); empty when the case does not give one.
    pub id: String,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Where a process runs: its cgroup (v2 path) and the container that cgroup belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub cgroup: String,
    pub container: Option<Container>,
}

/// Whether `container` is in a container or Kubernetes scope (`cgroup(…)` scopes: never).
pub fn container_matches(scope: &Scope, container: &Container) -> bool {
    scope.holds_for(&ContainerView {
        id: &container.id,
        name: container.name.as_deref(),
        namespace: container.namespace.as_deref(),
        labels: Some(&container.labels),
    })
}

/// Whether cgroup `path` is the cgroup `scope` names or one below it.
fn under(path: &str, scope: &str) -> bool {
    scope == "/"
        || path == scope
        || path
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The scope bits of a process placed at `p` (bit `i`: scope `i` of the policy holds).
pub fn bits(scopes: &[Scope], p: &Placement) -> u64 {
    let mut bits = 0;
    for (i, scope) in scopes.iter().enumerate().take(64) {
        let hit = match scope {
            Scope::Cgroup { path } => under(&p.cgroup, path),
            other => p
                .container
                .as_ref()
                .is_some_and(|c| container_matches(other, c)),
        };
        if hit {
            bits |= 1 << i;
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_scopes_hold_below_their_path() {
        let scopes = [
            Scope::Cgroup {
                path: "/kubepods".into(),
            },
            Scope::Cgroup { path: "/".into() },
        ];
        let at = |cgroup: &str| Placement {
            cgroup: cgroup.into(),
            container: None,
        };
        assert_eq!(bits(&scopes, &at("/kubepods")), 0b11);
        assert_eq!(bits(&scopes, &at("/kubepods/burstable/pod1")), 0b11);
        assert_eq!(bits(&scopes, &at("/kubepods-besteffort")), 0b10);
        assert_eq!(bits(&scopes, &at("/system.slice")), 0b10);
    }
}
