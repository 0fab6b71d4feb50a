//! The machinery of `cargo xtask bench` in a tiny run: every section measures, is saved and
//! loaded back, and makes a well-formed page (Markdown tables of even width, plots that exist,
//! SVG whose tags balance and whose numbers are numbers). No assertion is about speed: the
//! figures of a run this short mean nothing. Sections 2 to 4 need root and this kernel.

use std::path::Path;

use guard_tests::bench::page::{self, Results, Saved};
use guard_tests::bench::{alerts, compiler, kernel};

/// The tags of `svg` balance, it is one `<svg>` element, and no number in it is NaN or infinite.
fn assert_well_formed_svg(name: &str, svg: &str) {
    assert!(svg.starts_with("<svg "), "{name}: {svg}");
    assert!(svg.trim_end().ends_with("</svg>"), "{name}");
    for bad in ["NaN", "inf"] {
        assert!(!svg.contains(bad), "{name} has {bad}: {svg}");
    }
    let mut open: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let end = rest[i..]
            .find('>')
            .unwrap_or_else(|| panic!("{name}: unclosed tag"));
        let tag = &rest[i + 1..i + end];
        rest = &rest[i + end + 1..];
        let tag_name = |t: &str| t.split_whitespace().next().unwrap_or("").to_string();
        if let Some(closing) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(closing), "{name}: </{closing}>");
        } else if !tag.ends_with('/') {
            open.push(tag_name(tag));
        }
        // Attribute values are quoted in pairs.
        assert_eq!(tag.matches('"').count() % 2, 0, "{name}: <{tag}>");
    }
    assert!(open.is_empty(), "{name}: unclosed {open:?}");
}

/// Every Markdown table has rows as wide as its header, and a separator row.
fn assert_tables_even(md: &str) {
    let mut width: Option<usize> = None;
    let mut tables = 0;
    for line in md.lines() {
        if !line.starts_with('|') {
            width = None;
            continue;
        }
        let cells = line.matches('|').count();
        match width {
            None => {
                width = Some(cells);
                tables += 1;
            }
            Some(w) => assert_eq!(cells, w, "uneven table row: {line}"),
        }
    }
    assert!(tables >= 5, "{tables} tables in:\n{md}");
}

#[test]
fn the_compiler_section_measures_every_size() {
    let rows = compiler::measure(&[10, 100], 1).expect("compiles");
    let sizes: Vec<Option<usize>> = rows.iter().map(|r| r.rules).collect();
    assert_eq!(sizes, [None, Some(10), Some(100)]);
    for r in &rows {
        assert!(r.wall_ms.is_finite() && r.wall_ms > 0.0, "{r:?}");
        assert!(r.object_bytes > 0 && r.instructions > 0, "{r:?}");
        assert!(r.states_after_min >= 2, "{r:?}");
        assert!(r.states_after_min <= r.states_before_min, "{r:?}");
    }
    // More paths, more states: 100 directories of their own cannot share the 10's.
    assert!(rows[2].states_after_min > rows[1].states_after_min);
    let (n1, n2, k) = compiler::growth(&rows).expect("two sizes");
    assert_eq!((n1, n2), (10, 100));
    assert!(k.is_finite());
    let bound = compiler::n_log_n_exponent(1_000, 10_000);
    assert!((bound - 1.12).abs() < 0.01, "{bound}");
}

fn saved<T>(data: T, command: &str) -> Saved<T> {
    Saved {
        when: "now".into(),
        quick: true,
        command: command.into(),
        data,
    }
}

#[test]
fn every_section_makes_a_well_formed_page() {
    if !guard_tests::require_kernel_tests("every_section_makes_a_well_formed_page") {
        return;
    }
    let _lock = guard_tests::kernel_lock();
    let dir = std::env::temp_dir().join(format!("guard-bench-test-{}", std::process::id()));
    let plan = kernel::Plan {
        rounds: 1,
        iterations: 2_000,
        spawns: 3,
        large: 100,
        bpftrace: false,
    };
    let k = kernel::run(plan, &dir.join("kernel")).expect("the kernel rows run");
    let keys: Vec<&str> = k.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "cd", "ten", "large"]);
    assert_eq!(
        k.bpftrace_skipped.as_deref(),
        Some("not run on this backend")
    );
    assert!(
        !k.backend.is_empty() && !k.backend.starts_with("unknown"),
        "{}",
        k.backend
    );
    for r in &k.rows {
        assert!(
            r.uncovered_ns > 0.0 && r.covered_ns > 0.0 && r.spawn_us > 0.0,
            "{r:?}"
        );
    }
    let a = alerts::run(&[1_000], 0.3, &dir.join("alerts")).expect("the alert steps run");
    assert_eq!(a.steps.len(), 1);
    let step = &a.steps[0];
    assert!(step.opens > 0 && step.delivered > 0, "{step:?}");
    assert!(step.delivered <= step.opens, "{step:?}");

    // Saved and loaded back as the page's sources: the host's rows stand in for the VM's too.
    let results = dir.join("results");
    let c = compiler::measure(&[10, 100], 1).expect("compiles");
    page::save(&results, "compiler", &saved(c, "c")).unwrap();
    page::save(&results, "kernel", &saved(k.clone(), "k")).unwrap();
    page::save(&results, "lsm", &saved(k, "l")).unwrap();
    page::save(&results, "alerts", &saved(a, "a")).unwrap();
    let loaded = Results::load(&results).expect("loads");
    assert!(loaded.compiler.is_some() && loaded.kernel.is_some());
    assert!(loaded.lsm.is_some() && loaded.alerts.is_some());
    let rendered = page::render(&loaded);
    let md = &rendered.markdown;
    for heading in [
        "## 1. Compiler",
        "## 2. Kernel",
        "## 3. Kernel",
        "## 4. Alerts",
        "## Targets",
    ] {
        assert!(md.contains(heading), "{heading} missing:\n{md}");
    }
    assert!(!md.contains("Not measured yet"), "{md}");
    assert!(!md.contains("NaN") && !md.contains("inf |"), "{md}");
    for command in ["`c`", "`k`", "`l`", "`a`"] {
        assert!(
            md.contains(&format!("Reproduce: {command}")),
            "{command}:\n{md}"
        );
    }
    assert_tables_even(md);
    assert_eq!(rendered.plots.len(), 2);
    for (name, svg) in &rendered.plots {
        assert!(
            md.contains(&format!("](performance/{name})")),
            "{name} not linked"
        );
        assert_well_formed_svg(name, svg);
    }
    let out = dir.join("book/performance.md");
    page::write(&rendered, &out).expect("writes");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), *md);
    for (name, svg) in &rendered.plots {
        let written = std::fs::read_to_string(dir.join("book/performance").join(name)).unwrap();
        assert_eq!(written, *svg);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_page_without_figures_says_how_to_measure_them() {
    let md = page::render(&Results::default()).markdown;
    for section in page::SECTIONS {
        assert!(
            md.contains(&format!("cargo xtask bench --sections {section}`")),
            "{section}:\n{md}"
        );
    }
    assert!(md.contains("| compile 10,000 rules in under 1 s | - | not measured |"));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../book/src/performance/notes.md")
            .is_file()
    );
}
