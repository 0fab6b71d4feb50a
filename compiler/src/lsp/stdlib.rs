//! The modules `import` can name, as the editor sees them.
//!
//! With `--stdlib-dir DIR` the modules are files already, and go to definition opens them.
//! Otherwise they are embedded in `guardc`, so the first time the editor needs one as a file
//! (a definition or a related location inside a module) every module is written, read-only,
//! to `guard/stdlib-HASH/` in the user's cache directory (`$XDG_CACHE_HOME`, else
//! `~/.cache`; the system's temporary directory if neither can be written). HASH covers the
//! modules' contents, so each `guardc` build shows exactly the text it compiles against and
//! builds never overwrite each other's files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::diag::SourceFile;
use crate::frontend::{self, Options};

pub struct Library {
    pub options: Options,
    /// The directory the embedded modules were written to, once they have been (`None` inside
    /// if that failed).
    materialised: OnceLock<Option<PathBuf>>,
}

impl Library {
    pub fn new(options: Options) -> Library {
        Library {
            options,
            materialised: OnceLock::new(),
        }
    }

    /// The modules `import` can name.
    pub fn names(&self) -> Vec<String> {
        frontend::module_names(&self.options)
    }

    /// A module's text, as the checker would load it.
    pub fn source(&self, name: &str) -> Option<SourceFile> {
        frontend::module_source(name, &self.options).ok().flatten()
    }

    /// The file of module `name`, written out first if it is embedded.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        if let Some(dir) = &self.options.stdlib_dir {
            return Some(absolute(&dir.join(format!("{name}.grd"))));
        }
        self.source(name)?;
        Some(self.materialised()?.join(format!("{name}.grd")))
    }

    /// The file a diagnostic names (`SourceFile::name`): a module's path, as [`Library::path`].
    pub fn path_of_file(&self, file: &SourceFile) -> Option<PathBuf> {
        let stem = Path::new(file.name()).file_stem()?.to_str()?;
        match &self.options.stdlib_dir {
            Some(_) => Some(absolute(Path::new(file.name()))),
            None => self.path(stem),
        }
    }

    /// Whether a document is a module of the library rather than a policy: a file of the
    /// `--stdlib-dir`, of a written-out copy (this build's or another's), or of a directory
    /// named `stdlib` (the repository's). Modules are checked as an import checks them,
    /// without E0200 for having no rule.
    pub fn is_module(&self, path: &Path) -> bool {
        let Some(parent) = path.parent() else {
            return false;
        };
        let name = |p: Option<&Path>| {
            p.and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string()
        };
        let written_out =
            name(Some(parent)).starts_with("stdlib-") && name(parent.parent()).starts_with("guard");
        let dir = self.options.stdlib_dir.as_deref().map(absolute);
        name(Some(parent)) == "stdlib" || written_out || dir.as_deref() == Some(parent)
    }

    fn materialised(&self) -> Option<PathBuf> {
        self.materialised
            .get_or_init(|| {
                let modules: Vec<SourceFile> = frontend::stdlib_modules()
                    .into_iter()
                    .filter_map(|name| self.source(name))
                    .collect();
                let dir = format!("stdlib-{:016x}", fingerprint(&modules));
                candidates()
                    .into_iter()
                    .map(|root| root.join(&dir))
                    .find(|dir| write_modules(dir, &modules).is_ok())
            })
            .clone()
    }
}

/// Where the written-out library may go, best first.
fn candidates() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(cache) => roots.push(PathBuf::from(cache).join("guard")),
        None => roots
            .extend(std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/guard"))),
    }
    // Per user: another user's directory of the same name would not be writable.
    let user = std::env::var("USER").unwrap_or_default();
    roots.push(std::env::temp_dir().join(format!("guard-{user}")));
    roots
}

/// Writes each module unless the file already holds exactly its text; read-only, because an
/// edit there would change nothing the compiler reads.
fn write_modules(dir: &Path, modules: &[SourceFile]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    for module in modules {
        let name = Path::new(module.name())
            .file_name()
            .ok_or_else(|| std::io::Error::other("module without a file name"))?;
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|bytes| bytes == module.text().as_bytes()) {
            continue;
        }
        // Written aside and renamed: an editor never opens half a module.
        let tmp = dir.join(format!(
            ".{}.{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        std::fs::write(&tmp, module.text())?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// FNV-1a over the modules' names and texts: a stable name for one version of the library.
fn fingerprint(modules: &[SourceFile]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for module in modules {
        for &b in module
            .name()
            .as_bytes()
            .iter()
            .chain(&[0])
            .chain(module.text().as_bytes())
            .chain(&[0])
        {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
