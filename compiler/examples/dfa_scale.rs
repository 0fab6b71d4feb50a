//! How the DFA construction scales: builds 10 / 100 / 1,000 / 10,000
//! generated path patterns (`/srv/app{i}/secrets/*`, plus a mixed family),
//! forward and reversed, and prints the state counts before and after
//! minimisation, the byte classes, the packed table size and wall time.
//!
//! `cargo run --release -p guard-compiler --example dfa_scale`

use std::time::Instant;

use guard_compiler::dfa::{Mode, PatternSpec, build};

fn pattern(family: &str, i: usize) -> String {
    match family {
        "mixed" => match i % 4 {
            0 => format!("/srv/app{i}/secrets/*"),
            1 => format!("/home/user{i}/.ssh/**"),
            2 => format!("/etc/svc{i}/*.conf"),
            _ => format!("/var/lib/db{i}/**/wal-?"),
        },
        _ => format!("/srv/app{i}/secrets/*"),
    }
}

fn main() {
    println!(
        "{:<8} {:<9} {:>6} {:>8} {:>10} {:>9} {:>8} {:>11} {:>10}",
        "family",
        "tags",
        "n",
        "reversed",
        "raw states",
        "minimised",
        "classes",
        "table bytes",
        "time"
    );
    for family in ["secrets", "mixed"] {
        for distinct_tags in [false, true] {
            for n in [10, 100, 1_000, 10_000] {
                let texts: Vec<String> = (0..n).map(|i| pattern(family, i)).collect();
                let specs: Vec<PatternSpec> = texts
                    .iter()
                    .enumerate()
                    .map(|(i, text)| PatternSpec {
                        text,
                        tag: if distinct_tags {
                            i as u32
                        } else {
                            i as u32 % 16
                        },
                        mode: Mode::Path,
                    })
                    .collect();
                for reversed in [false, true] {
                    let started = Instant::now();
                    let result = build(&specs, reversed);
                    let table = result.as_ref().ok().map(|dfa| {
                        dfa.to_table(|accept, _| accept.iter().fold(0, |m, &t| m | 1 << (t % 64)))
                    });
                    let elapsed = started.elapsed();
                    let tags = if distinct_tags { "distinct" } else { "i % 16" };
                    match (&result, &table) {
                        (Ok(dfa), Some(table)) => println!(
                            "{family:<8} {tags:<9} {n:>6} {reversed:>8} {:>10} {:>9} {:>8} {:>11} {:>8.1?}",
                            dfa.states_before_min,
                            dfa.n_states(),
                            dfa.n_classes(),
                            table.bytes().len(),
                            elapsed
                        ),
                        (Err(e), _) => {
                            println!(
                                "{family:<8} {tags:<9} {n:>6} {reversed:>8} error after {elapsed:.1?}: {e}"
                            )
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
