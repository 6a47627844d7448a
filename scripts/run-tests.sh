#!/usr/bin/env bash
# Runs every compiled test file (dist/**/*.test.js) with node's test runner, one file at a
# time (the suite starts real processes on a 2-core machine). Fails when no test file is found,
# so a broken build or a wrong path can never pass as "0 tests". Extra arguments narrow the run
# to files whose path contains one of them: `npm test -- grpc websocket`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(find dist -name '*.test.js' -not -path '*/node_modules/*' | sort)
if (($# > 0)); then
  wanted=()
  for f in "${files[@]}"; do for pat in "$@"; do [[ $f == *"$pat"* ]] && { wanted+=("$f"); break; }; done; done
  files=("${wanted[@]}")
fi
if ((${#files[@]} == 0)); then
  echo "run-tests: no test files found under dist/ (did the build run?)" >&2
  exit 1
fi
exec node --test --test-concurrency=1 --test-timeout=300000 "${files[@]}"
