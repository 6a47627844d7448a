#!/usr/bin/env bash
# profile-hops.sh OUT_DIR - where does a Weft hop spend its CPU on the bench's mesh path?
# Run by bench/run.sh when PROFILE=1 (after the mesh check, instead of the driver): starts the
# nginx upstream and both Weft hops exactly as the driver would (bench/weft-hop.sh, identities,
# mTLS, discovery, policy, metrics), each under `node --cpu-prof`, sends PROF_RATE (1000) req/s
# for PROF_SECS (10) with wrk + the shared lua/pace.lua (PROTO h1) or h2load -c1 (PROTO h2), stops
# the hops (the profiles are written on exit) and prints the top functions by self time per hop
# (bench/profile-summary.ts). Profiles: OUT_DIR/*.cpuprofile (open them in Chrome DevTools or
# speedscope for a flame graph).
#
# Other lenses on the same hops (each instead of --cpu-prof; the hops' stderr, with whatever the
# flags print, is kept as OUT_DIR/in.log and out.log):
#   PROF_NODE_ARGS="--trace-gc"  node flags for both hops (GC pauses, --trace-gc-nvp phases, ...)
#   PROF_PERF=1     perf record -g of both hops with --perf-basic-prof (JS frames named), native
#                   and kernel time included: OUT_DIR/PROTO.perf.data for `perf report -i`
#   PROF_STRACE=1   strace -c of each hop: syscalls by count and time, OUT_DIR/PROTO-HOP.strace.txt
#                   (strace slows the hops several-fold: counts per request, not latency)
#   PROF_MAX=1      load at maximum (wrk -c50 / h2load -c50 -m1) instead of PROF_RATE, then each
#                   hop's VmHWM and RssAnon
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=$REPO/../shared/bench
OUT=${1:?usage: profile-hops.sh OUT_DIR}
PROTO=${PROTO:-h1}
PROF_RATE=${PROF_RATE:-1000}
PROF_SECS=${PROF_SECS:-10}
PIN=${PIN:-1} LOADGEN_CPU=${LOADGEN_CPU:-1} SUT_CPU=${SUT_CPU:-0}
P_UP=$BASE_PORT
P_UP_H2=$((BASE_PORT + 1))
mkdir -p "$OUT"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/weft-profile.XXXXXX")
chmod 755 "$TMP"
STOP_WAIT_TENTHS=100 # the hops write their --cpu-prof profiles on exit
# shellcheck source=bench/procs.sh
source "$REPO/bench/procs.sh"
trap 'stop_all; rm -rf "$TMP"' EXIT

up=$TMP/upstream
mkdir -p "$up/tmp" "$up/h2root"
printf '\0\0\0\0\0' >"$up/h2root/grpc-empty.bin"
printf '\0\0\0\0\0' >"$TMP/grpc-body.bin"
sed -e "s|@DIR@|$up|g" -e "s|@ERRLOG@|$TMP/upstream.error.log|g" "$SHARED/conf/nginx-common.inc.tmpl" >"$up/common.inc"
sed -e "s|@DIR@|$up|g" -e "s|@PORT_UP@|$P_UP|g" -e "s|@PORT_UP_H2@|$P_UP_H2|g" \
  "$SHARED/conf/nginx-upstream.conf.tmpl" >"$up/nginx.conf"
$(sut) nginx -p "$up" -e "$TMP/upstream.error.log" -c "$up/nginx.conf" >/dev/null 2>&1 &
PIDS+=($!)

out=$((BASE_PORT + 90)) app=$P_UP path=/
if [[ $PROTO == h2 ]]; then out=$((BASE_PORT + 100)) app=$P_UP_H2 path=/bench.Echo/Unary; fi
in=$((out + 1))
cpu_prof=1
[[ ${PROF_PERF:-0} == 1 || ${PROF_STRACE:-0} == 1 || -n ${PROF_NODE_ARGS:-} ]] && cpu_prof=0
declare -A HOP_PID
for hop in in out; do
  listen=$in target=$app
  [[ $hop == out ]] && listen=$out target=$in
  args="--cpu-prof --cpu-prof-dir=$OUT --cpu-prof-name=$PROTO-$hop.cpuprofile"
  ((cpu_prof)) || args="${PROF_NODE_ARGS:-}"
  # --perf-basic-prof also writes V8's log: into OUT_DIR, not the working directory.
  [[ ${PROF_PERF:-0} == 1 ]] &&
    args="$args --perf-basic-prof --no-logfile-per-isolate --logfile=$OUT/$PROTO-$hop.v8.log"
  # weft-hop.sh execs node, so this PID becomes the hop's node process.
  WEFT_BENCH_NODE_ARGS=$args \
    $(sut) bash "$REPO/bench/weft-hop.sh" "$hop" "$listen" "$target" none "$PROTO" >"$TMP/$hop.log" 2>&1 &
  PIDS+=($!)
  HOP_PID[$hop]=$!
done
url=http://127.0.0.1:$out$path
curl_args=(-s -o /dev/null -w '%{http_code}' --max-time 1)
if [[ $PROTO == h2 ]]; then
  curl_args+=(--http2-prior-knowledge -H 'content-type: application/grpc' --data-binary "@$TMP/grpc-body.bin")
fi
for _ in $(seq 1 150); do
  [[ $(curl "${curl_args[@]}" "$url" || true) == 200 ]] && break
  sleep 0.1
done
tracers=()
if [[ ${PROF_STRACE:-0} == 1 ]]; then
  for hop in in out; do
    timeout -s INT "$PROF_SECS" strace -c -f -o "$OUT/$PROTO-$hop.strace.txt" -p "${HOP_PID[$hop]}" 2>/dev/null &
    tracers+=($!)
  done
fi
if [[ ${PROF_PERF:-0} == 1 ]]; then
  perf record -F 2000 -g -o "$OUT/$PROTO.perf.data" -p "${HOP_PID[in]},${HOP_PID[out]}" \
    -- sleep "$PROF_SECS" >/dev/null 2>"$OUT/perf.log" &
  tracers+=($!)
fi
if [[ ${PROF_MAX:-0} == 1 ]]; then
  printf '[profile] %s: at maximum load for %ss through %s\n' "$PROTO" "$PROF_SECS" "$url" >&2
else
  printf '[profile] %s: %s req/s for %ss through %s\n' "$PROTO" "$PROF_RATE" "$PROF_SECS" "$url" >&2
fi
if [[ ${PROF_MAX:-0} == 1 && $PROTO == h1 ]]; then
  $(loadgen) timeout -k 5 $((PROF_SECS + 30)) wrk -t1 -c50 -d"${PROF_SECS}s" "$url" |
    grep -E '^(Requests/sec|  .* requests in)' >&2 || true
elif [[ ${PROF_MAX:-0} == 1 ]]; then
  $(loadgen) timeout -k 5 $((PROF_SECS + 30)) h2load -t1 -c50 -m1 -D "$PROF_SECS" -d "$TMP/grpc-body.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' "$url" | grep -E '^(finished|requests)' >&2 || true
elif [[ $PROTO == h1 ]]; then
  $(loadgen) timeout -k 5 $((PROF_SECS + 30)) wrk -t1 -c10 -d"${PROF_SECS}s" -s "$SHARED/lua/pace.lua" "$url" -- "$PROF_RATE" |
    grep '^RESULT' >&2 || true
else
  n=$((PROF_RATE * PROF_SECS))
  awk -v n="$n" -v rate="$PROF_RATE" -v url="$url" \
    'BEGIN { for (i = 0; i < n; i++) printf "%.3f\t%s\n", i * 1000.0 / rate, url }' >"$TMP/timing.txt"
  LIBEV_FLAGS=1 $(loadgen) timeout -k 5 $((PROF_SECS + 30)) h2load -t1 -c1 -m256 -n"$n" \
    --timing-script-file="$TMP/timing.txt" -d "$TMP/grpc-body.bin" -H 'content-type: application/grpc' \
    -H 'te: trailers' | grep -E '^(finished|requests|time for request)' >&2 || true
fi
if [[ ${PROF_MAX:-0} == 1 ]]; then
  for hop in in out; do
    printf '[profile] %s hop: %s\n' "$hop" "$(grep -E '^(VmHWM|RssAnon):' "/proc/${HOP_PID[$hop]}/status" | tr -s ' \t\n' ' ')" >&2
  done
fi
for t in "${tracers[@]}"; do wait "$t" || true; done
stop_all
cp "$TMP/in.log" "$TMP/out.log" "$OUT/" 2>/dev/null || true
((cpu_prof)) || exit 0
node "$REPO/dist/bench/profile-summary.js" "$OUT/$PROTO-out.cpuprofile" "$OUT/$PROTO-in.cpuprofile"
