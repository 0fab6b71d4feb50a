//! Generates, into `OUT_DIR`:
//!
//! - the parser, from `grammar/guard.lalrpop`;
//! - `stdlib.rs`, the standard library modules (`stdlib/*.grd`) embedded as
//!   a table of `(name, contents)`, so `guardc` resolves `import` the same
//!   way from any directory.
//!
//! The grammar and the standard library live outside the crate, in the
//! repository's top-level directories, so the book and other tools can refer
//! to them.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=../grammar/guard.lalrpop");
    println!("cargo:rerun-if-changed=../stdlib");
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    std::fs::write(
        out_dir.join("stdlib.rs"),
        stdlib_table(&manifest_dir.join("../stdlib"))?,
    )?;
    lalrpop::Configuration::new()
        .set_in_dir("../grammar")
        .set_out_dir(out_dir)
        .process()
}

/// Every `*.grd` file of `dir`, sorted by name, as a Rust table. A missing
/// directory is an empty standard library. Files are included as bytes:
/// one that is not UTF-8 is reported by the front end with a location
/// when it is imported, instead of breaking the build.
fn stdlib_table(dir: &Path) -> Result<String, Box<dyn Error>> {
    let mut modules: Vec<(String, PathBuf)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "grd")
                && let Some(name) = path.file_stem().and_then(|s| s.to_str())
            {
                modules.push((name.to_string(), std::fs::canonicalize(&path)?));
            }
        }
    }
    modules.sort();
    let mut out = String::from(
        "/// The standard library, `(module name, contents)`, sorted by name.\n\
         pub static STDLIB: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in &modules {
        let path = path.to_str().ok_or("stdlib path is not UTF-8")?;
        writeln!(out, "    ({name:?}, include_bytes!({path:?})),")?;
    }
    out.push_str("];\n");
    Ok(out)
}
