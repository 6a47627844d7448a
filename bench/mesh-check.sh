#!/usr/bin/env bash
# mesh-check.sh OUT.json - before anything is measured: is the Weft path of the bench really the
# full mesh path? Run by bench/run.sh once the control plane is up and the bench's resources are
# applied (it exports WEFT_BENCH_*). For each protocol (h1, then h2 gRPC-shaped) it starts the
# same nginx upstream the driver uses and both hops exactly as the driver will (bench/weft-hop.sh,
# same ports), then checks, from the proxies' own metrics:
#   - mTLS between the hops: the inbound hop counts the requests with tls="true" and
#     client_id=<outbound hop's identity>; the outbound hop with tls="true" and server_id=<inbound's>;
#   - policy: inbound_http_authz_allow_total of the bench Server moves by the requests sent; a
#     plaintext client calling the inbound hop directly is refused (403 / grpc-status 7) and
#     inbound_http_authz_deny_total moves;
#   - idle RSS (VmRSS) of each proxy, after the requests and IDLE_SECS (3) of quiet, with its split:
#     RssAnon (the process's own heap and stacks) and RssFile (mostly the node binary's pages,
#     shared with every other node process).
# Prints one line per check and writes them as JSON to OUT.json; exits 1 if a check failed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHARED=$REPO/../shared/bench
OUT=${1:?usage: mesh-check.sh OUT.json}
N=${CHECK_REQUESTS:-200}
IDLE_SECS=${IDLE_SECS:-3}
P_UP=$BASE_PORT
P_UP_H2=$((BASE_PORT + 1))
GRPC=(-H 'content-type: application/grpc' -H 'te: trailers')

TMP=$(mktemp -d "${TMPDIR:-/tmp}/weft-mesh-check.XXXXXX")
chmod 755 "$TMP"
# The check's hops record their memory and metrics here, not beside the measured hops'.
export WEFT_BENCH_HOPS_DIR=$TMP/hops
# shellcheck source=bench/procs.sh
source "$REPO/bench/procs.sh"
# The hops' logs are kept beside OUT (mesh-check-logs/).
trap 'stop_all; mkdir -p "${OUT%.json}-logs"; cp "$TMP"/*.log "${OUT%.json}-logs/" 2>/dev/null; rm -rf "$TMP"' EXIT

say() { printf '[mesh-check] %s\n' "$*" >&2; }

# The driver's upstream, rendered from its own templates.
up=$TMP/upstream
mkdir -p "$up/tmp" "$up/h2root"
printf '\0\0\0\0\0' >"$up/h2root/grpc-empty.bin"
printf '\0\0\0\0\0' >"$TMP/grpc-body.bin"
sed -e "s|@DIR@|$up|g" -e "s|@ERRLOG@|$TMP/upstream.error.log|g" "$SHARED/conf/nginx-common.inc.tmpl" >"$up/common.inc"
sed -e "s|@DIR@|$up|g" -e "s|@PORT_UP@|$P_UP|g" -e "s|@PORT_UP_H2@|$P_UP_H2|g" \
  "$SHARED/conf/nginx-upstream.conf.tmpl" >"$up/nginx.conf"
nginx -p "$up" -e "$TMP/upstream.error.log" -c "$up/nginx.conf" >/dev/null 2>&1 &
PIDS+=($!)

request() { # proto url [curl args...] -> HTTP status (h2: status/grpc-status)
  local proto=$1 url=$2; shift 2
  if [[ $proto == h1 ]]; then
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true
  else
    curl -s -o /dev/null -D "$TMP/h2-headers" -w '%{http_code}' --max-time 2 --http2-prior-knowledge \
      "${GRPC[@]}" --data-binary "@$TMP/grpc-body.bin" "$@" "$url" || true
    # grpc-status as a header: a trailers-only answer (the proxy's own, e.g. a denial). The
    # upstream's grpc-status 0 is a trailer, which curl does not dump: success reads "200/".
    printf '/%s' "$(tr -d '\r' <"$TMP/h2-headers" | awk -F': ' 'tolower($1) == "grpc-status" {print $2}' | tail -1)"
  fi
}

# sum of the samples of METRIC in TEXT whose labels include every k="v" given
metric_sum() { # file metric k=v...
  local file=$1 name=$2; shift 2
  awk -v name="$name" -v want="$*" '
    BEGIN { n = split(want, w, " ") }
    index($0, name "{") == 1 {
      ok = 1
      for (i = 1; i <= n; i++) { split(w[i], kv, "="); if (index($0, kv[1] "=\"" kv[2] "\"") == 0) ok = 0 }
      if (ok) s += $NF
    }
    END { printf "%d", s }' "$file"
}

mem_kb() { # pid field (VmRSS, RssAnon, RssFile) -> KiB, 0 when the process is gone
  local v
  v=$(awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || true)
  echo "${v:-0}"
}

json_rows=()
failed=0
check() { # proto name ok(0/1) detail
  local status=PASS
  if [[ $3 != 1 ]]; then status=FAIL; failed=1; fi
  say "$1 $2: $status ($4)"
  json_rows+=("$(jq -nc --arg p "$1" --arg n "$2" --arg s "$status" --arg d "$4" '{proto: $p, check: $n, status: $s, detail: $d}')")
}

idle_json=()
for proto in h1 h2; do
  if [[ $proto == h1 ]]; then
    out=$((BASE_PORT + 90)) server=bench-http url_path=/ want=200
  else
    out=$((BASE_PORT + 100)) server=bench-grpc url_path=/bench.Echo/Unary want=200/
  fi
  in=$((out + 1)) app=$P_UP
  [[ $proto == h2 ]] && app=$P_UP_H2
  bash "$REPO/bench/weft-hop.sh" in "$in" "$app" none "$proto" >"$TMP/$proto-in.log" 2>&1 &
  in_pid=$!
  PIDS+=("$in_pid")
  bash "$REPO/bench/weft-hop.sh" out "$out" "$in" none "$proto" >"$TMP/$proto-out.log" 2>&1 &
  out_pid=$!
  PIDS+=("$out_pid")
  url=http://127.0.0.1:$out$url_path
  got=
  for _ in $(seq 1 150); do
    got=$(request "$proto" "$url")
    [[ $got == "$want" ]] && break
    sleep 0.1
  done
  if [[ $got != "$want" ]]; then
    check "$proto" "path answers" 0 "got '$got' through 127.0.0.1:$out after 15 s; logs: $(tail -n 3 "$TMP/$proto-in.log" "$TMP/$proto-out.log" | tr '\n' ' ')"
    stop_all
    continue
  fi
  bad=0
  for _ in $(seq 1 "$N"); do [[ $(request "$proto" "$url") == "$want" ]] || bad=$((bad + 1)); done
  check "$proto" "path answers" $((bad == 0)) "$N requests through both hops, $bad not $want"

  # A plaintext client without identity, straight to the inbound hop: policy must refuse it.
  denied=$(request "$proto" "http://127.0.0.1:$in$url_path")
  want_denied=403
  [[ $proto == h2 ]] && want_denied=200/7
  curl -s --max-time 2 "http://127.0.0.1:$((in + WEFT_BENCH_ADMIN_OFFSET))/metrics" >"$TMP/in.prom"
  curl -s --max-time 2 "http://127.0.0.1:$((out + WEFT_BENCH_ADMIN_OFFSET))/metrics" >"$TMP/out.prom"
  cp "$TMP/in.prom" "${OUT%.json}-$proto-inbound.prom"
  cp "$TMP/out.prom" "${OUT%.json}-$proto-outbound.prom"

  mtls_in=$(metric_sum "$TMP/in.prom" request_total direction=inbound tls=true "client_id=$WEFT_BENCH_CLIENT_ID")
  mtls_out=$(metric_sum "$TMP/out.prom" request_total direction=outbound tls=true "server_id=$WEFT_BENCH_SERVER_ID")
  check "$proto" "mTLS between the hops" $((mtls_in >= N && mtls_out >= N)) \
    "inbound request_total{tls=\"true\",client_id=\"$WEFT_BENCH_CLIENT_ID\"}=$mtls_in, outbound request_total{tls=\"true\",server_id=\"$WEFT_BENCH_SERVER_ID\"}=$mtls_out"
  allow=$(metric_sum "$TMP/in.prom" inbound_http_authz_allow_total "srv_name=$server")
  deny=$(metric_sum "$TMP/in.prom" inbound_http_authz_deny_total "srv_name=$server")
  check "$proto" "policy enforced" "$( ((allow >= N && deny >= 1)) && [[ $denied == "$want_denied" ]] && echo 1 || echo 0)" \
    "inbound_http_authz_allow_total{srv_name=\"$server\"}=$allow; plaintext caller answered $denied (expected $want_denied), inbound_http_authz_deny_total=$deny"
  resolved=$(metric_sum "$TMP/out.prom" request_total direction=outbound "authority=${WEFT_BENCH_H1_AUTHORITY}")
  [[ $proto == h2 ]] && resolved=$(metric_sum "$TMP/out.prom" request_total direction=outbound "authority=${WEFT_BENCH_H2_AUTHORITY}")
  check "$proto" "discovery" $((resolved >= N)) "outbound requests labelled with the service authority (Destination stream): $resolved"

  sleep "$IDLE_SECS"
  in_kb=$(mem_kb "$in_pid" VmRSS) out_kb=$(mem_kb "$out_pid" VmRSS)
  in_anon=$(mem_kb "$in_pid" RssAnon) out_anon=$(mem_kb "$out_pid" RssAnon)
  in_file=$(mem_kb "$in_pid" RssFile) out_file=$(mem_kb "$out_pid" RssFile)
  say "$proto idle RSS: outbound $((out_kb / 1024)) MiB (anon $((out_anon / 1024)), file $((out_file / 1024))), inbound $((in_kb / 1024)) MiB (anon $((in_anon / 1024)), file $((in_file / 1024)))"
  idle_json+=("$(jq -nc --arg p "$proto" --argjson o "$out_kb" --argjson i "$in_kb" \
    --argjson oa "$out_anon" --argjson ia "$in_anon" --argjson ofile "$out_file" --argjson ifile "$in_file" \
    '{proto: $p, outbound_kb: $o, inbound_kb: $i, outbound_anon_kb: $oa, inbound_anon_kb: $ia, outbound_file_kb: $ofile, inbound_file_kb: $ifile}')")
  kill -TERM "$in_pid" "$out_pid" 2>/dev/null || true
  for pid in "$in_pid" "$out_pid"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=("${PIDS[0]}")
done

{
  printf '{"checks": ['
  (IFS=,; printf '%s' "${json_rows[*]}")
  printf '], "idle_rss": ['
  (IFS=,; printf '%s' "${idle_json[*]}")
  printf ']}\n'
} | jq . >"$OUT"
# Let the watchers delete the check's Workloads before the driver starts the measured hops.
sleep 1.5
exit "$failed"
