//! Generates the parser from `grammar/guard.lalrpop` into `OUT_DIR`.
//!
//! The grammar lives outside the crate, in the repository's top-level
//! `grammar/` directory, so the book and other tools can refer to it.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=../grammar/guard.lalrpop");
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = std::env::var("OUT_DIR")?;
    lalrpop::Configuration::new()
        .set_in_dir("../grammar")
        .set_out_dir(out_dir)
        .process()
}
