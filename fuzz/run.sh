#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20: the CI smoke) on the committed seed
# corpus, with a fixed seed. New inputs go to a scratch corpus (fuzz/corpus-run/<target>), never
# into fuzz/corpus. Long runs: see docs/reliability.md.
#   bash fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
shift || true
# cargo-fuzz is installed only for this job (it needs the nightly toolchain the machine has).
command -v cargo-fuzz >/dev/null || cargo +stable install cargo-fuzz --locked
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
# Build flags: release with AddressSanitizer by default (the long runs); the CI smoke passes
# FUZZ_FLAGS="--dev -s none" (no optimisation, no sanitizer: a fraction of the build time; the
# targets' own checks and Rust's panics still fail the run).
read -r -a flags <<< "${FUZZ_FLAGS:--O}"
cargo +nightly fuzz build "${flags[@]}"
for t in "${targets[@]}"; do
  mkdir -p "corpus-run/$t"
  echo "== fuzz $t (${secs}s)"
  cargo +nightly fuzz run "${flags[@]}" "$t" "corpus-run/$t" "corpus/$t" -- \
    -max_total_time="$secs" -seed=1 -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==[0-9]+==|SUMMARY|thread .* panicked|artifact_prefix|Test unit written)' || true
  # A crash leaves an artifact and a non-zero status: fail the job on it.
  if compgen -G "artifacts/$t/crash-*" >/dev/null || compgen -G "artifacts/$t/oom-*" >/dev/null || compgen -G "artifacts/$t/timeout-*" >/dev/null; then
    echo "fuzz $t: found a failing input: $(ls artifacts/$t)"
    exit 1
  fi
done
