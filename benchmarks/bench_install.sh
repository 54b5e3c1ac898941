#!/usr/bin/env bash
# Size and install time of a fresh virtual environment per install spec (docs/install.md).
#
# Usage: benchmarks/bench_install.sh [WORK_DIR] [SPEC ...]
#   WORK_DIR  where the environments go (default: a new temporary folder; removed at the end)
#   SPEC      pip install specs, run from the repository root (default: . .[train] .[serve]
#             .[ray] .[all] .[test])
# Prints one line per spec: wall time of `pip install -v SPEC`, `du -sm` of the whole
# environment, the number of lines of the build log that mention a deprecation, and the load
# average when it ended (these times say little on a busy machine). pip's cache is used as it
# is: run once to warm it, then measure.
set -u
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-}"
if [ -z "$work" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
shift || true
specs=("$@")
[ ${#specs[@]} -eq 0 ] && specs=(. ".[train]" ".[serve]" ".[ray]" ".[all]" ".[test]")
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
for index in "${!specs[@]}"; do
    spec="${specs[$index]}"
    env_dir="$work/venv-$index"
    rm -rf "$env_dir"
    python3 -m venv "$env_dir"
    start=$(date +%s.%N)
    (cd "$repo" && "$env_dir/bin/pip" install -v "$spec" > "$work/log-$index.txt" 2>&1)
    status=$?
    end=$(date +%s.%N)
    printf "%-10s rc=%s time=%6.1f s  size=%5s MiB  deprecations=%s  load=%s\n" "$spec" "$status" \
        "$(echo "$end - $start" | bc)" "$(du -sm "$env_dir" | cut -f1)" \
        "$(grep -ci deprecat "$work/log-$index.txt")" "$(cut -d' ' -f1-3 /proc/loadavg)"
done
