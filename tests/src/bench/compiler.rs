//! Section 1 of `cargo xtask bench`: what guardc costs. Wall time of the library's whole
//! pipeline (check, lower, DFA, code generation, ELF) in this process, object size, and the path
//! DFA's states before and after minimisation, for the five-rule policy and generated policies
//! of n rules over n paths. The sizes are interleaved round by round, like the kernel rows.

use std::time::Instant;

use guard_compiler::{codegen, frontend};
use serde::{Deserialize, Serialize};

use super::{five_rule_policy, generated_policy, median};

/// One policy's figures (medians over the rounds).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompileRow {
    pub policy: String,
    /// Rules (and paths) of a generated policy; `None` for the five-rule policy.
    pub rules: Option<usize>,
    pub wall_ms: f64,
    pub object_bytes: usize,
    pub states_before_min: usize,
    pub states_after_min: usize,
    pub classes: usize,
    pub instructions: usize,
}

/// Compiles `source` once: (ms, the figures).
fn compile_once(name: &str, source: &str) -> Result<(f64, CompileRow), String> {
    let start = Instant::now();
    let policy = frontend::check_source(name, source)
        .map_err(|d| format!("{name}: {} diagnostics", d.len()))?;
    let compiled = codegen::compile(&policy, name).map_err(|e| format!("{name}: {e}"))?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let s = compiled.lowered.stats;
    Ok((
        ms,
        CompileRow {
            policy: name.to_string(),
            rules: None,
            wall_ms: ms,
            object_bytes: compiled.object.len(),
            states_before_min: s.path_states_before_min,
            states_after_min: s.path_states,
            classes: s.path_classes,
            instructions: compiled.programs.iter().map(|p| p.code.insn_count()).sum(),
        },
    ))
}

/// The five-rule policy, then one generated policy per size in `sizes`; `rounds` rounds.
pub fn measure(sizes: &[usize], rounds: u32) -> Result<Vec<CompileRow>, String> {
    let covered = std::env::temp_dir().join("guard-bench-covered");
    let mut inputs = vec![(
        "five-rule policy".to_string(),
        None,
        five_rule_policy(&covered),
    )];
    for &n in sizes {
        let name = format!("{} rules", super::kernel::thousands(n));
        inputs.push((name, Some(n), generated_policy(n)));
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); inputs.len()];
    let mut rows: Vec<Option<CompileRow>> = vec![None; inputs.len()];
    for _ in 0..rounds.max(1) {
        for (i, (name, rules, source)) in inputs.iter().enumerate() {
            let (ms, mut row) = compile_once(name, source)?;
            row.rules = *rules;
            times[i].push(ms);
            rows[i] = Some(row);
        }
    }
    Ok(rows
        .into_iter()
        .zip(times)
        .filter_map(|(row, t)| {
            row.map(|r| CompileRow {
                wall_ms: median(t),
                ..r
            })
        })
        .collect())
}

/// The growth exponent between the two largest generated policies: log(t2/t1) / log(n2/n1).
/// 1.0 is linear; n log n from 1,000 to 10,000 is about 1.12.
pub fn growth(rows: &[CompileRow]) -> Option<(usize, usize, f64)> {
    let sized: Vec<(usize, f64)> = rows
        .iter()
        .filter_map(|r| r.rules.map(|n| (n, r.wall_ms)))
        .collect();
    let [.., (n1, t1), (n2, t2)] = sized.as_slice() else {
        return None;
    };
    Some((*n1, *n2, (t2 / t1).ln() / (*n2 as f64 / *n1 as f64).ln()))
}

/// The exponent n log n has between `n1` and `n2`: the target's bound for [`growth`].
pub fn n_log_n_exponent(n1: usize, n2: usize) -> f64 {
    let f = |n: usize| n as f64 * (n as f64).ln();
    (f(n2) / f(n1)).ln() / (n2 as f64 / n1 as f64).ln()
}
