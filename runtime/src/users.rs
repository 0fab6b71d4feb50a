//! uid → user name, for the `user.name` alert field, and name → uid for `user("name")`.
//!
//! Names come from a passwd file (the host's `/etc/passwd`; when guard-run runs in a container,
//! mount the host's file and point [`UserNames::with_path`] at it). Users known only through
//! NSS (LDAP, sssd) are not resolved: `getpwuid` would consult the agent's own NSS setup, which
//! is not the host's when containerised, and could block on the network while alerts wait.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What identifies one version of the passwd file. The mtime alone can miss a rewrite within
/// the file system's timestamp granularity; an atomic replace (what `useradd`/`vipw` do) also
/// changes the inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
    ino: u64,
}

/// A cache of a passwd file, re-read when the file changes.
#[derive(Debug)]
pub struct UserNames {
    path: PathBuf,
    stamp: Option<Stamp>,
    names: HashMap<u32, String>,
}

impl Default for UserNames {
    fn default() -> Self {
        UserNames::new()
    }
}

impl UserNames {
    /// Reads `/etc/passwd`.
    pub fn new() -> UserNames {
        UserNames::with_path("/etc/passwd")
    }

    /// Reads the passwd file at `path`. Nothing is read until the first lookup.
    pub fn with_path(path: impl Into<PathBuf>) -> UserNames {
        UserNames {
            path: path.into(),
            stamp: None,
            names: HashMap::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name of `uid`, or `None` if the file does not list it (or cannot be read).
    pub fn name(&mut self, uid: u32) -> Option<&str> {
        self.reload_if_changed();
        self.names.get(&uid).map(String::as_str)
    }

    /// Costs one `stat` per lookup, which is cheap next to rendering an alert.
    fn reload_if_changed(&mut self) {
        let Ok(meta) = fs::metadata(&self.path) else {
            // Unreadable right now (being replaced?): keep what we had rather than forgetting
            // every name; the next lookup tries again.
            return;
        };
        let stamp = Stamp {
            mtime: meta.modified().ok(),
            len: meta.len(),
            ino: meta.ino(),
        };
        if self.stamp == Some(stamp) {
            return;
        }
        if let Ok(bytes) = fs::read(&self.path) {
            self.names = parse_passwd(&bytes);
            self.stamp = Some(stamp);
        }
    }
}

/// The `(name, uid)` entries of passwd(5) lines `name:password:uid:gid:gecos:home:shell`, in
/// file order. Malformed lines, comments and NIS `+`/`-` entries are skipped.
fn passwd_entries(text: &[u8]) -> impl Iterator<Item = (String, u32)> + '_ {
    text.split(|&b| b == b'\n').filter_map(|line| {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') || line.starts_with(['+', '-']) {
            return None;
        }
        let mut fields = line.split(':');
        let (Some(name), Some(_password), Some(uid)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        let uid = uid.trim().parse::<u32>().ok()?;
        (!name.is_empty()).then(|| (name.to_owned(), uid))
    })
}

/// uid → name. When a uid appears twice the first entry wins, as with `getpwuid`.
pub fn parse_passwd(text: &[u8]) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for (name, uid) in passwd_entries(text) {
        names.entry(uid).or_insert(name);
    }
    names
}

/// name → uid, for `user("name")` subjects. The first entry of a name wins, as with
/// `getpwnam`.
pub fn uids_by_name(text: &[u8]) -> HashMap<String, u32> {
    let mut uids = HashMap::new();
    for (name, uid) in passwd_entries(text) {
        uids.entry(name).or_insert(uid);
    }
    uids
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
broken line without colons
baduid:x:notanumber:1::/:/bin/sh
+nisuser::::::
appuser:x:1000:1000:App User,,,:/home/appuser:/bin/sh
duplicate:x:1000:1000::/:/bin/sh
crlf:x:1001:1001::/:/bin/sh\r
";

    #[test]
    fn parses_passwd_lines() {
        let names = parse_passwd(PASSWD.as_bytes());
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&1).map(String::as_str), Some("daemon"));
        assert_eq!(names.get(&1000).map(String::as_str), Some("appuser"));
        assert_eq!(names.get(&1001).map(String::as_str), Some("crlf"));
        assert_eq!(names.len(), 4, "{names:?}");
        let uids = uids_by_name(PASSWD.as_bytes());
        assert_eq!(uids.get("appuser"), Some(&1000));
        assert_eq!(uids.get("duplicate"), Some(&1000));
        assert_eq!(uids.get("baduid"), None);
        assert_eq!(uids.get("+nisuser"), None);
    }

    #[test]
    fn rereads_when_the_file_changes() {
        let path = std::env::temp_dir().join(format!("guard-users-{}", std::process::id()));
        fs::write(&path, PASSWD).unwrap();
        let mut users = UserNames::with_path(&path);
        assert_eq!(users.name(1000), Some("appuser"));
        assert_eq!(users.name(4242), None);

        // Same length and an identical mtime, only the inode differs: an atomic replace.
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        let tmp = path.with_extension("new");
        fs::write(&tmp, PASSWD.replace("appuser", "newuser")).unwrap();
        fs::File::options()
            .write(true)
            .open(&tmp)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        fs::rename(&tmp, &path).unwrap();
        assert_eq!(users.name(1000), Some("newuser"));

        // Rewritten in place with a new mtime.
        fs::write(&path, "svc:x:4242:4242::/:/bin/false\n").unwrap();
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(mtime + Duration::from_secs(5)).unwrap();
        assert_eq!(users.name(4242), Some("svc"));
        assert_eq!(users.name(1000), None);

        // Gone: the last known names stay.
        fs::remove_file(&path).unwrap();
        assert_eq!(users.name(4242), Some("svc"));
    }

    #[test]
    fn missing_file_resolves_nothing() {
        let mut users = UserNames::with_path("/nonexistent/guard/passwd");
        assert_eq!(users.name(0), None);
    }
}
