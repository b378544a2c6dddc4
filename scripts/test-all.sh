#!/usr/bin/env bash
# Runs each `make` target named on the command line (the test suites), every one even when an
# earlier one fails, then prints one line per suite (status, minutes) and exits non-zero if any
# failed. Each suite runs under a hard limit, TEST_SUITE_LIMIT seconds (default 1200), so a hang
# the per-test limits miss still ends the run; libtest, pytest-timeout and node --test name the
# test that hung in the suite's own output.
set -uo pipefail

limit=${TEST_SUITE_LIMIT:-1200}
make=${MAKE:-make}
names=()
codes=()
times=()
start_all=$SECONDS
for target in "$@"; do
  echo "=== make $target ==="
  t0=$SECONDS
  timeout --kill-after=30 "$limit" "$make" --no-print-directory "$target"
  rc=$?
  [ $rc -eq 124 ] && echo "=== make $target: over its ${limit} s limit, stopped ===" >&2
  names+=("$target")
  codes+=("$rc")
  times+=($((SECONDS - t0)))
done

failed=0
echo
echo "=== test summary ==="
for i in "${!names[@]}"; do
  if [ "${codes[$i]}" -eq 0 ]; then status=ok; else status="FAILED (exit ${codes[$i]})"; failed=1; fi
  printf '  %-14s %-20s %3d:%02d\n' "${names[$i]}" "$status" $((times[i] / 60)) $((times[i] % 60))
done
total=$((SECONDS - start_all))
printf '  %-14s %-20s %3d:%02d\n' total "" $((total / 60)) $((total % 60))
exit $failed
