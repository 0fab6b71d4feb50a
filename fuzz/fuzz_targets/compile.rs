//! Arbitrary bytes through guardc as `guardc compile` takes a file: parse and check, then, when
//! the policy is accepted, code generation; the diagnostics are rendered both ways, as guardc
//! prints them. Any panic, abort, stack overflow or time-out is a bug: no input may make guardc
//! fail other than with diagnostics or a `CodegenError`.
#![no_main]

use guard_compiler::{codegen, diag, frontend};
use libfuzzer_sys::fuzz_target;

const NAME: &str = "fuzz.grd";

fuzz_target!(|data: &[u8]| {
    // As guardc reads a file: lossily, every U+FFFD reported as invalid UTF-8.
    let source = String::from_utf8_lossy(data);
    match frontend::check_source(NAME, &source) {
        Ok(policy) => {
            // An error is an answer, not a bug; only a panic or a hang is.
            if let Ok(compiled) = codegen::compile(&policy, NAME) {
                let _ = codegen::listing(&compiled);
            }
        }
        Err(diagnostics) => {
            let _ = diag::render_diagnostics(NAME, &source, &diagnostics, false);
            let _ = diag::render_json(NAME, &source, &diagnostics);
        }
    }
});
