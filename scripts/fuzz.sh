#!/usr/bin/env bash
# Fuzzes every decoder with libFuzzer for a bounded time (README, "Fuzzing").
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Builds sextant-fuzz with -sanitize=fuzzer into .build-fuzz, then runs each target (all by
# default; `swift run sextant-fuzz --list` names them) for the given seconds (default 30), seeded
# from Tests/Fuzz/corpus/<target> and the matching Envoy fixtures. New corpus entries, logs and
# findings go to a temporary folder ($FUZZ_WORK_DIR to choose it), never into the repository.
# Exits non-zero if any target crashed, hung, ran out of memory or could not start; each finding
# is printed with the command that reproduces it. A finding becomes a regression test: fix the
# decoder, then copy the file into Tests/Fuzz/regressions/<target>/.
#
# Environment: FUZZ_SANITIZE=address adds AddressSanitizer; FUZZ_CONFIGURATION=release builds
# optimised (a slower build, two to three times the executions per second, for long runs);
# FUZZ_JOBS=N runs N targets at once;
# FUZZ_FLAGS passes more libFuzzer flags (e.g. -use_value_profile=1); FUZZ_SKIP_BUILD=1 reuses
# the last build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-30}"
shift || true
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [seconds-per-target] [target...]" >&2; exit 2; }

fixtures=Tests/Fixtures/envoy
declare -A seeds=(
    [zipkin-json]="$fixtures/zipkin"
    [zipkin-proto]=""
    [envoy-als]="$fixtures/als"
    [envoy-access-log]="$fixtures/access-log"
    [otlp-traces]="$fixtures/otlp/traces"
    [otlp-logs]="$fixtures/otlp/logs"
    [otlp-metrics]="$fixtures/otlp/metrics"
    [otlp-json]=""
    [statsd]="$fixtures/statsd"
    [remote-write]=""
    [remote-write-snappy]=""
    [prometheus-text]="$fixtures/prometheus"
    [envoy-metrics-service]="$fixtures/metrics-service"
    [body-decompressor]=""
)
# Boundary values for the mutator (Tests/Fuzz/dictionaries). The line-oriented formats also get
# short inputs, which run faster and still hold many lines (a statsd datagram from Envoy is one
# line); the binary targets keep whole seed messages.
binary_dict=-dict=Tests/Fuzz/dictionaries/protobuf.dict
text_dict=-dict=Tests/Fuzz/dictionaries/text.dict
declare -A options=(
    [zipkin-json]="$text_dict"
    [zipkin-proto]="$binary_dict"
    [envoy-als]="$binary_dict"
    [envoy-access-log]="$text_dict -max_len=16384"
    [otlp-traces]="$binary_dict"
    [otlp-logs]="$binary_dict"
    [otlp-metrics]="$binary_dict"
    [otlp-json]="$text_dict"
    [statsd]="$text_dict -max_len=4096"
    [remote-write]="$binary_dict"
    [prometheus-text]="$text_dict -max_len=16384"
    [envoy-metrics-service]="$binary_dict"
)
all_targets=(
    zipkin-json zipkin-proto envoy-als envoy-access-log otlp-traces otlp-logs otlp-metrics otlp-json statsd
    remote-write remote-write-snappy prometheus-text envoy-metrics-service body-decompressor
)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    [[ -v "seeds[$target]" ]] || { echo "fuzz.sh: unknown target '$target'" >&2; exit 2; }
done

# Each sanitizer set gets its own scratch folder, so switching does not rebuild the other.
sanitize=(--sanitize=fuzzer)
scratch=.build-fuzz
if [[ -n "${FUZZ_SANITIZE:-}" ]]; then
    sanitize+=("--sanitize=$FUZZ_SANITIZE")
    scratch+="-$FUZZ_SANITIZE"
fi
build=(
    swift build -c "${FUZZ_CONFIGURATION:-debug}" --product sextant-fuzz --scratch-path "$scratch" "${sanitize[@]}"
    -Xswiftc -DFUZZING
)
if [[ "${FUZZ_SKIP_BUILD:-}" != 1 ]]; then
    echo "fuzz.sh: ${build[*]}"
    started=$SECONDS
    "${build[@]}"
    echo "fuzz.sh: built in $((SECONDS - started)) s"
fi
binary="$("${build[@]}" --show-bin-path)/sextant-fuzz"

work="${FUZZ_WORK_DIR:-$(mktemp -d -t sextant-fuzz.XXXXXX)}"
mkdir -p "$work"
echo "fuzz.sh: ${#targets[@]} targets, ${seconds} s each; corpus, logs and findings in $work"

# One target: libFuzzer writes new inputs into the first folder and only reads the others.
fuzz_one() {
    local target="$1"
    mkdir -p "$work/corpus/$target" "$work/findings/$target"
    local folders=("$work/corpus/$target" "Tests/Fuzz/corpus/$target")
    [[ -n "${seeds[$target]}" ]] && folders+=("${seeds[$target]}")
    [[ -d "Tests/Fuzz/regressions/$target" ]] && folders+=("Tests/Fuzz/regressions/$target")
    # Swift's own backtracer would take the crash signal before libFuzzer can save the input.
    local extra=() flags=()
    [[ -n "${options[$target]:-}" ]] && read -ra extra <<< "${options[$target]}"
    [[ -n "${FUZZ_FLAGS:-}" ]] && read -ra flags <<< "$FUZZ_FLAGS" && extra+=("${flags[@]}")
    SWIFT_BACKTRACE=enable=no SEXTANT_FUZZ_TARGET="$target" "$binary" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$work/findings/$target/" "${extra[@]}" "${folders[@]}" \
        > "$work/$target.log" 2>&1
}

summary() {
    local target="$1" status="$2" log="$work/$target.log"
    local runs execs cov ft
    # A target that died early has no statistics; print what there is.
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    execs="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    cov="$( (grep -oE 'cov: [0-9]+' "$log" || true) | tail -1 | cut -d' ' -f2)"
    ft="$( (grep -oE 'ft: [0-9]+' "$log" || true) | tail -1 | cut -d' ' -f2)"
    printf '%-22s %-8s %10s runs %7s exec/s  cov %5s  ft %6s  corpus %s\n' "$target" "$status" "${runs:-?}" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "$(find "$work/corpus/$target" -type f | wc -l)"
}

failed=()
run_target() {
    local target="$1"
    if fuzz_one "$target"; then echo "ok"; else echo "FAILED"; fi
}

jobs="${FUZZ_JOBS:-1}"
declare -A status=()
if [[ "$jobs" -le 1 ]]; then
    for target in "${targets[@]}"; do
        status[$target]="$(run_target "$target")"
        summary "$target" "${status[$target]}"
    done
else
    # Targets in parallel batches; each writes its verdict to a file.
    for ((i = 0; i < ${#targets[@]}; i += jobs)); do
        for target in "${targets[@]:i:jobs}"; do
            (run_target "$target" > "$work/$target.status") &
        done
        wait
        for target in "${targets[@]:i:jobs}"; do
            status[$target]="$(cat "$work/$target.status")"
            summary "$target" "${status[$target]}"
        done
    done
fi

for target in "${targets[@]}"; do
    [[ "${status[$target]}" == ok ]] && continue
    failed+=("$target")
    echo
    echo "=== $target failed; end of $work/$target.log:"
    grep -E 'ERROR: libFuzzer|SUMMARY|Fatal error|deadly signal|timeout|out-of-memory|Test unit written' \
        "$work/$target.log" | head -20 || tail -40 "$work/$target.log"
    for finding in "$work/findings/$target"/*; do
        [[ -e "$finding" ]] || continue
        echo "reproduce: swift run sextant-fuzz $target $finding"
    done
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: every target ran ${seconds} s without a finding"
