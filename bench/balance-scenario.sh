#!/usr/bin/env bash
# balance-scenario.sh RUN_DIR - what a client sees through a balancer when one of three endpoints
# is 10x slower: the same paced request stream (wrk + the shared lua/pace.lua) through
#   weft                  `weft proxy` (P2C over latency EWMA, metrics on), the app calling its
#                         upstream binding for the service; endpoints from a destinations file
#   haproxy-roundrobin    haproxy `balance roundrobin`
#   haproxy-leastconn     haproxy `balance leastconn`
# one balancer hop each (no mTLS: this compares balancing, not the mesh path), in front of
# bench/balance-app.ts (endpoints BAL_DELAYS_MS, default 1 1 10). Same pinning as the driver.
# Writes RUN_DIR/balance.tsv (path, rate, p50/p90/p99/max µs, errors, share of requests the slow
# endpoint answered, requests each endpoint answered), RUN_DIR/balance.md, and raw wrk output and
# per-endpoint counts (JSON) under RUN_DIR/raw/balance-*.
#
# Knobs: BAL_RATE (500 req/s), BAL_CONNS (10), BAL_SECS (10), BAL_WARMUP_SECS (3, paced like the
# measurement, so every balancer has seen every endpoint), BAL_PORT (BASE_PORT + 200 .. +204),
# BAL_PATHS (which of "weft haproxy-roundrobin haproxy-leastconn" to run, in that order).
# Weft's metrics at the end of its run: RUN_DIR/raw/balance-weft.prom.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=$REPO/../shared/bench
RUN_DIR=${1:?usage: balance-scenario.sh RUN_DIR}
BAL_RATE=${BAL_RATE:-500}
BAL_CONNS=${BAL_CONNS:-10}
BAL_SECS=${BAL_SECS:-10}
BAL_WARMUP_SECS=${BAL_WARMUP_SECS:-3}
BAL_PORT=${BAL_PORT:-$((${BASE_PORT:-18080} + 200))}
read -r -a DELAYS <<<"${BAL_DELAYS_MS:-1 1 10}"
PIN=${PIN:-1} LOADGEN_CPU=${LOADGEN_CPU:-1} SUT_CPU=${SUT_CPU:-0}
mkdir -p "$RUN_DIR/raw"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/weft-balance.XXXXXX")
# shellcheck source=bench/procs.sh
source "$REPO/bench/procs.sh"
trap 'stop_all; rm -rf "$TMP"' EXIT
say() { printf '[balance] %s\n' "$*" >&2; }
# Starts a server on the SUT core; not a function call in the background, so that $! is the
# server's own PID (taskset execs it).
spawn() { # log cmd...
  local log=$1
  shift
  if [[ $PIN == 1 ]]; then taskset -c "$SUT_CPU" "$@" >"$log" 2>&1 & else "$@" >"$log" 2>&1 & fi
  LAST_PID=$!
}
on_loadgen() { if [[ $PIN == 1 ]]; then taskset -c "$LOADGEN_CPU" "$@"; else "$@"; fi; }

ports=() endpoints=()
for i in "${!DELAYS[@]}"; do
  ports+=($((BAL_PORT + i)))
  endpoints+=(--endpoint "$((BAL_PORT + i)):${DELAYS[$i]}")
done
front=$((BAL_PORT + ${#DELAYS[@]}))
slowest=0
for i in "${!DELAYS[@]}"; do ((${DELAYS[$i]} > ${DELAYS[$slowest]})) && slowest=$i; done
SERVICE=lb.default:8080

wait_200() { # url : bounded (10 s)
  local _
  for _ in $(seq 1 100); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true) == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

start_path() { # path
  case $1 in
    weft)
      {
        echo 'destinations:'
        echo "  - authority: $SERVICE"
        echo '    endpoints:'
        for p in "${ports[@]}"; do echo "      - address: 127.0.0.1:$p"; done
      } >"$TMP/destinations.yaml"
      spawn "$TMP/weft.log" env WEFT_PROXY_LOG_LEVEL=warn node "$REPO/bin/weft.js" proxy \
        --destinations "$TMP/destinations.yaml" --inbound-listen-addr none \
        --outbound-listen-addr 127.0.0.1:0 --admin-listen-addr "127.0.0.1:$((front + 1))" \
        --upstream "$SERVICE=$front"
      ;;
    haproxy-*)
      sed -e "s|@BIND@|127.0.0.1:$front|" -e "s|@BALANCE@|${1#haproxy-}|" \
        -e "s|@S1@|127.0.0.1:${ports[0]}|" -e "s|@S2@|127.0.0.1:${ports[1]}|" -e "s|@S3@|127.0.0.1:${ports[2]}|" \
        "$REPO/bench/conf/haproxy-balance.cfg.tmpl" >"$TMP/$1.cfg"
      spawn "$TMP/$1.log" haproxy -db -f "$TMP/$1.cfg"
      ;;
  esac
  PIDS+=("$LAST_PID")
}

paced() { # secs out
  on_loadgen timeout -k 5 $(($1 + 30)) wrk -t1 -c"$BAL_CONNS" -d"${1}s" -s "$SHARED/lua/pace.lua" \
    "http://127.0.0.1:$front/" -- "$BAL_RATE" >"$2" 2>&1 || true
}

((${#DELAYS[@]} == 3)) || { say "BAL_DELAYS_MS must list three delays"; exit 2; }
command -v haproxy >/dev/null || say "haproxy not installed: only the weft path runs"
printf 'path\trate\tp50_us\tp90_us\tp99_us\tmax_us\terrors\tslow_share_pct\tper_endpoint\n' >"$RUN_DIR/balance.tsv"
for path in ${BAL_PATHS:-weft haproxy-roundrobin haproxy-leastconn}; do
  [[ $path == haproxy-* ]] && ! command -v haproxy >/dev/null && continue
  say "$path: endpoints ${DELAYS[*]} ms, $BAL_RATE req/s, $BAL_CONNS connections, ${BAL_SECS}s"
  spawn "$TMP/app-$path.log" node "$REPO/dist/bench/balance-app.js" "${endpoints[@]}" --counts "$TMP/counts-$path.json"
  app_pid=$LAST_PID
  start_path "$path"
  PIDS=("$app_pid" "${PIDS[@]}")
  for p in "${ports[@]}"; do wait_200 "http://127.0.0.1:$p/" || { say "endpoint $p did not start"; exit 1; }; done
  wait_200 "http://127.0.0.1:$front/" || { say "$path did not answer"; cat "$TMP"/*.log >&2; exit 1; }
  paced "$BAL_WARMUP_SECS" "$TMP/warmup.txt"
  kill -USR2 "$app_pid" # count the measured requests only
  out=$RUN_DIR/raw/balance-$path.txt
  paced "$BAL_SECS" "$out"
  # Weft's own view (per-endpoint latency histograms), for reading why it chose what it chose.
  [[ $path == weft ]] && curl -s --max-time 2 "http://127.0.0.1:$((front + 1))/metrics" >"$RUN_DIR/raw/balance-weft.prom"
  stop_all
  line=$(grep -a '^RESULT ' "$out" | tail -1 || true)
  declare -A r=()
  for kv in ${line#RESULT }; do r[${kv%%=*}]=${kv#*=}; done
  share=$(jq -r --arg slow "127.0.0.1:${ports[$slowest]} (${DELAYS[$slowest]} ms)" \
    '(to_entries | map(.value) | add) as $all | if $all > 0 then (100 * .[$slow] / $all * 10 | round / 10) else "-" end' \
    "$TMP/counts-$path.json" 2>/dev/null || echo -)
  # Requests each endpoint answered, in BAL_DELAYS_MS order ("1 ms: 2501 / 1 ms: 2490 / 10 ms: 9").
  cp "$TMP/counts-$path.json" "$RUN_DIR/raw/balance-$path.counts.json" 2>/dev/null || true
  per=$(jq -r '[to_entries[] | "\(.key | capture("\\((?<d>[^)]*)\\)").d): \(.value)"] | join(" / ")' \
    "$TMP/counts-$path.json" 2>/dev/null || echo -)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$path" "${r[rps]:-}" "${r[p50_us]:-}" "${r[p90_us]:-}" \
    "${r[p99_us]:-}" "${r[max_us]:-}" "${r[errors]:-}" "$share" "$per" >>"$RUN_DIR/balance.tsv"
  say "  p50=${r[p50_us]:-?}us p99=${r[p99_us]:-?}us, slow endpoint answered ${share}% of the requests ($per)"
  unset r
done
{
  echo "Balancing: endpoints answering after ${DELAYS[*]} ms, $BAL_RATE req/s paced (wrk + pace.lua, $BAL_CONNS connections, ${BAL_SECS}s after a ${BAL_WARMUP_SECS}s paced warm-up); one balancer hop."
  echo
  echo '| path | rate (req/s) | p50 us | p90 us | p99 us | max us | errors | requests to the slow endpoint (%) | requests per endpoint |'
  echo '|---|---:|---:|---:|---:|---:|---:|---:|---|'
  tail -n +2 "$RUN_DIR/balance.tsv" | awk -F'\t' '{ printf "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
} >"$RUN_DIR/balance.md"
cat "$RUN_DIR/balance.md"
