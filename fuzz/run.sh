#!/usr/bin/env bash
# Fuzzes guardc (parse + check + codegen, diagnostics rendered) for SECONDS with cargo fuzz.
#
#   bash fuzz/run.sh SECONDS [LIBFUZZER_ARG...]     e.g. bash fuzz/run.sh 60; bash fuzz/run.sh 600 -fork=2
#
# Exits non-zero if any input panics, aborts, overflows the stack, runs out of memory or takes
# longer than FUZZ_TIMEOUT seconds (a hang), or if the build fails; the input is left in
# fuzz/artifacts/compile/ and the command to reproduce and minimise it is printed.
# Inputs in fuzz/regressions/ (past crashes) are replayed first, on every run.
#
# Runs on the stable toolchain. No sanitizer by default (guardc is safe Rust: a bug shows as a
# panic, and without ASan the fuzzer runs about twice as fast); FUZZ_SANITIZER=address turns on
# AddressSanitizer, which needs unstable flags and so RUSTC_BOOTSTRAP=1 on stable.
# Environment: FUZZ_TIMEOUT (per input, seconds, default 10), FUZZ_SANITIZER (none|address),
# FUZZ_TARGET (default compile).
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
seconds="${1:?usage: bash fuzz/run.sh SECONDS [LIBFUZZER_ARG...]}"
shift
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz/run.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2; }
target="${FUZZ_TARGET:-compile}"
timeout="${FUZZ_TIMEOUT:-10}"
sanitizer="${FUZZ_SANITIZER:-none}"

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$fuzz_dir")"
cd "$root" # cargo fuzz works from the project that holds fuzz/
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# --- cargo-fuzz, pinned
t0=$(now)
if [[ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked --quiet
fi
echo "== cargo-fuzz: $(cargo fuzz --version) ($(since "$t0"))"

# --- build (its own target dir: the flags differ from the main build's, sharing would thrash)
target_dir="$fuzz_dir/target"
if [[ "$sanitizer" != none ]]; then
    # -Zsanitizer is unstable; the stable toolchain ships the sanitizer runtimes and takes the
    # flag under RUSTC_BOOTSTRAP. Built apart, so switching does not rebuild the other.
    export RUSTC_BOOTSTRAP=1
    target_dir="$fuzz_dir/target/sanitizer-$sanitizer"
fi
args=(--sanitizer "$sanitizer" --target-dir "$target_dir")
t0=$(now)
echo "== building fuzz target '$target' (sanitizer: $sanitizer; $(rustc --version))"
cargo fuzz build "${args[@]}" "$target"
echo "== built ($(since "$t0"))"

# --- seed corpus: the project's own policies, copied fresh (not kept in git twice)
corpus="$fuzz_dir/corpus/$target"
seeds="$fuzz_dir/target/seeds"
rm -rf "$seeds"
mkdir -p "$corpus" "$seeds" "$fuzz_dir/artifacts/$target"
n=0
for f in compiler/tests/frontend/*.grd compiler/tests/frontend/*/*.grd policies/*.grd stdlib/*.grd; do
    [[ -f "$f" ]] || continue
    cp "$f" "$seeds/$(echo "$f" | tr / _)"
    n=$((n + 1))
done
# and every ```grd block of the README, the book and docs/
for md in README.md book/src/*.md docs/*.md; do
    [[ -f "$md" ]] || continue
    n=$((n + $(awk -v out="$seeds/$(echo "$md" | tr / _)" '
        /^[ \t]*```/ { if (body) { close(file); body = 0; next }
                       t = $0; sub(/^[ \t]*```+[ \t]*/, "", t); sub(/[ \t]+$/, "", t)
                       if (t == "grd") { body = 1; k++; file = out "." k ".grd"; printf "" > file }
                       next }
        body { print > file }
        END { print k + 0 }' "$md")))
done
corpora=("$corpus" "$seeds")
if compgen -G "$fuzz_dir/regressions/*" >/dev/null; then
    corpora+=("$fuzz_dir/regressions")
fi
echo "== corpus: $(find "$corpus" -type f | wc -l) inputs kept in fuzz/corpus/$target, $n seeds, $(find "$fuzz_dir/regressions" -type f 2>/dev/null | wc -l) regressions"

# --- run
log="$fuzz_dir/target/fuzz-$target.log"
t0=$(now)
echo "== fuzzing '$target' for $seconds s (per-input timeout $timeout s; full log: fuzz/target/fuzz-$target.log)"
set +e
# The first corpus directory takes the new inputs; the others are only read. The -ignore_*=0
# matter with -fork=N, which otherwise goes on past time-outs and OOMs.
# libFuzzer stops itself after SECONDS (loading the corpus included) and fails an input slower
# than the timeout; the outer limit catches what those miss (with -fork, a hanging corpus input
# stalls the first merge), so the script never runs past its budget.
limit=$((seconds + timeout + 300))
timeout -k 30 "$limit" cargo fuzz run "${args[@]}" "$target" "${corpora[@]}" -- \
    -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=4096 \
    -dict="$fuzz_dir/guard.dict" -print_final_stats=1 \
    -ignore_timeouts=0 -ignore_ooms=0 -ignore_crashes=0 "$@" 2>&1 |
    tee "$log" | grep --line-buffered -vE '^(#[0-9]+[[:space:]]+(NEW|REDUCE)[[:space:]]|[[:space:]]+NEW_FUNC)'
status=${PIPESTATUS[0]}
set -e
echo "== fuzzed ($(since "$t0"))"

runs=$(grep -oE '^Done [0-9]+ runs' "$log" | tail -1 | grep -oE '[0-9]+' || true)
# The last status line: `#N DONE cov: ...`, or `#N: cov: ...` with -fork.
final=$(grep -E '^#[0-9]+(:|[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED))[[:space:]]' "$log" | tail -1 || true)
[[ -n "$runs" ]] || runs=$(echo "$final" | grep -oE '^#[0-9]+' | tr -d '#' || true)
cov=$(echo "$final" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+' || true)
ft=$(echo "$final" | grep -oE 'ft: [0-9]+' | grep -oE '[0-9]+' || true)
corp=$(echo "$final" | grep -oE 'corp: [0-9]+' | grep -oE '[0-9]+' || true)
execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' || true)
echo "fuzz: target $target, executions ${execs:-${runs:-?}}, coverage ${cov:-?} edges / ${ft:-?} features, corpus ${corp:-?} inputs"
if [[ $status -eq 124 || $status -eq 137 ]]; then
    echo "fuzz: FAILED: still running after $limit s, stopped (a hang libFuzzer did not catch)" >&2
    exit 1
fi
if [[ $status -ne 0 ]]; then
    echo "fuzz: FAILED (exit $status): an input crashed, hung past ${timeout} s, or ran out of memory" >&2
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written|overflowed its stack' "$log" | head -20 >&2 || true
    rel="${target_dir#"$root"/}"
    echo "fuzz: reproduce with: cargo fuzz run --sanitizer $sanitizer --target-dir $rel $target fuzz/artifacts/$target/FILE" >&2
    echo "fuzz: minimise with:  cargo fuzz tmin --sanitizer $sanitizer --target-dir $rel $target fuzz/artifacts/$target/FILE" >&2
    echo "fuzz: then keep the minimised input in fuzz/regressions/ (replayed by every run)" >&2
    exit 1
fi
echo "fuzz: no crash, hang or OOM in $seconds s"
