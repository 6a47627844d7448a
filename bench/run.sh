#!/usr/bin/env bash
# bench/run.sh - what do two Weft proxies in series cost, beside haproxy, nginx and a naive Node
# proxy on the same machine?
#
# Runs the shared driver ../shared/bench/run.sh (relative to the repo root) with Weft as its
# `custom` (HTTP/1.1) and `h2-custom` (gRPC-shaped h2c) paths, one hop per process started by
# bench/weft-hop.sh. Needs a build first (`npm run bench` does setup + build, then this).
# Results: bench/results/run-YYYYmmdd-HHMMSS/ (table.md, results.tsv, raw/, logs/). How to read
# them, and every knob: ../shared/bench/README.md. Knobs set in the environment pass through, e.g.
#   PATHS='direct custom' H2_PATHS='h2-direct h2-custom' LAT_SECS=2 TPUT_SECS=2 bash bench/run.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRIVER=$REPO/../shared/bench/run.sh

die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

[[ -f $DRIVER ]] || die "the shared bench driver is not at $DRIVER (expected beside this repo as ../shared/bench/run.sh)"
[[ -f $REPO/dist/src/cli/main.js ]] || die "Weft is not built: run npm run build (or npm run bench)"

# The driver substitutes the @...@ placeholders and runs each command with `bash -c "exec CMD"`,
# so the path is quoted for that shell.
hop="bash $(printf '%q' "$REPO/bench/weft-hop.sh")"
export CUSTOM_OUT_CMD=${CUSTOM_OUT_CMD:-"$hop out @LISTEN@ @TARGET@ @CERTS@ @PROTO@"}
export CUSTOM_IN_CMD=${CUSTOM_IN_CMD:-"$hop in @LISTEN@ @TARGET@ @CERTS@ @PROTO@"}
# As in the driver, an empty value (H2_PATHS=) skips that group.
export PATHS=${PATHS-"direct haproxy-plain haproxy-mtls nginx-mtls node-plain node-mtls custom"}
export H2_PATHS=${H2_PATHS-"h2-direct h2-haproxy-mtls h2-nginx-mtls h2-node-mtls h2-custom"}
# The driver puts each run in its own run-<timestamp>/ under OUT_DIR.
export OUT_DIR=${OUT_DIR:-$REPO/bench/results}

exec bash "$DRIVER"
