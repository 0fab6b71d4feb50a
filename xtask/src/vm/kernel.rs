//! The guest kernel: the Debian package that `linux-image-amd64` depends on in this machine's
//! apt sources, downloaded with `apt-get download` into `target/vm/` and unpacked with
//! `dpkg-deb -x`, both cached.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::run_checked;

/// The metapackage whose dependency names the kernel package.
const META: &str = "linux-image-amd64";

pub struct Kernel {
    /// The kernel package (`linux-image-6.1.0-56-amd64`).
    pub package: String,
    /// `uname -r` of the guest.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` of the unpacked package.
    pub modules: PathBuf,
}

pub fn prepare(vm_dir: &Path) -> Result<Kernel> {
    let cache = vm_dir.join("kernel");
    fs::create_dir_all(&cache)?;
    let package = match resolve() {
        Ok(p) => p,
        Err(e) => match cached_packages(&cache)?.pop() {
            // apt's lists are gone (a fresh machine before `apt-get update`), but an earlier
            // run left a kernel: use it rather than fail.
            Some(p) => {
                println!(
                    "cannot ask apt which kernel {META} depends on ({e:#}); using the cached {p}"
                );
                p
            }
            None => return Err(e),
        },
    };
    let root = cache.join(&package);
    if !root.join(".unpacked").exists() {
        let deb = download(&cache, &package)?;
        let tmp = cache.join(format!("{package}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        let _ = fs::remove_dir_all(&root);
        println!("unpacking {}", deb.display());
        run_checked(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
        fs::write(tmp.join(".unpacked"), &package)?;
        fs::rename(&tmp, &root)?;
    } else {
        println!("{package}: cached in {}", root.display());
    }
    let vmlinuz = only_entry(&root.join("boot"), "vmlinuz-")?;
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or_default()
        .to_string();
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(&release))
        .find(|d| d.is_dir())
        .with_context(|| format!("{package} has no lib/modules/{release}"))?;
    Ok(Kernel {
        package,
        release,
        vmlinuz,
        modules,
    })
}

/// `linux-image-amd64`'s kernel package, as apt sees it now.
fn resolve() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", META])
        .output()
        .context("running `apt-cache depends`")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_depends(&text).with_context(|| {
        format!(
            "apt knows no kernel package for {META} (`apt-cache depends {META}`: {}{}); run `apt-get update` first",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })
}

fn parse_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|d| d.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|d| d.starts_with("linux-image-"))
        .map(str::to_string)
}

/// Kernel packages unpacked by earlier runs, sorted.
fn cached_packages(cache: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for e in fs::read_dir(cache)? {
        let e = e?;
        if e.path().join(".unpacked").exists() {
            found.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    found.sort();
    Ok(found)
}

/// The package's `.deb` in `cache`, downloaded if it is not there yet.
fn download(cache: &Path, package: &str) -> Result<PathBuf> {
    let find = || -> Result<Option<PathBuf>> {
        for e in fs::read_dir(cache)? {
            let p = e?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with(&format!("{package}_")) && name.ends_with(".deb") {
                return Ok(Some(p));
            }
        }
        Ok(None)
    };
    if let Some(deb) = find()? {
        return Ok(deb);
    }
    println!("downloading {package} (apt-get download)");
    // As root, apt drops to `_apt` for downloads, which cannot write into target/: download
    // as the caller instead.
    run_checked(
        Command::new("apt-get")
            .args(["download", "-q", "-o", "APT::Sandbox::User=root", package])
            .current_dir(cache),
    )
    .with_context(|| format!("downloading {package}: try `apt-get update` first"))?;
    find()?.with_context(|| format!("`apt-get download {package}` left no .deb"))
}

/// The one entry of `dir` whose name starts with `prefix`.
fn only_entry(dir: &Path, prefix: &str) -> Result<PathBuf> {
    let mut found = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix))
        {
            found.push(p);
        }
    }
    if found.len() != 1 {
        bail!(
            "expected one {prefix}* in {}, found {}",
            dir.display(),
            found.len()
        );
    }
    Ok(found.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_package_is_the_metapackages_dependency() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            parse_depends(text).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(
            parse_depends("x\n  Depends: <linux-image-6.1.0-9-amd64>\n").as_deref(),
            Some("linux-image-6.1.0-9-amd64")
        );
        assert_eq!(parse_depends(""), None);
    }
}
