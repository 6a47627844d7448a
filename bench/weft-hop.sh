#!/usr/bin/env bash
# weft-hop.sh - one Weft proxy as one hop of the shared bench, on the full mesh path: identity
# from the control plane's identity service, mTLS between the hops, discovery through the
# Destination stream, authorization policy on the inbound hop, metrics on. bench/run.sh starts
# the control plane, applies the Services, Servers and AuthorizationPolicies, and passes this
# script to ../shared/bench/run.sh as CUSTOM_OUT_CMD and CUSTOM_IN_CMD.
#
#   weft-hop.sh out LISTEN TARGET CERTS PROTO
#       outbound proxy (identity sa/bench-client) with an upstream binding on 127.0.0.1:LISTEN for
#       the bench service of PROTO (h1: bench.default:<upstream port>, h2: bench-grpc...): the load
#       tools call the binding as if it were the service; discovery finds the inbound hop.
#       TARGET (the inbound hop's port) is not used: the Workload the inbound hop registers says it.
#   weft-hop.sh in LISTEN TARGET CERTS PROTO
#       inbound proxy (identity sa/bench) on 127.0.0.1:LISTEN in front of the app (the bench
#       upstream) on 127.0.0.1:TARGET; registers its Workload (address, port LISTEN, identity,
#       adminAddress) before it starts, and deletes it when the proxy is gone.
#
# CERTS (the driver's throwaway CA) is not used: the certificates are the mesh's own, issued by
# the control plane for a one-time token minted here through the API.
#
# Each proxy's admin listener is on LISTEN + WEFT_BENCH_ADMIN_OFFSET (1000). A detached watcher
# (reparented away from the proxy, so the driver does not count it as the proxy's child; on
# WEFT_BENCH_AUX_CPU) records the proxy's VmRSS/VmHWM (and RssAnon/RssFile) every second and its /metrics every 2 s
# under WEFT_BENCH_HOPS_DIR/<LISTEN>.<PID>/, deletes the Workload and the temporary files once the
# proxy has exited.
#
# The proxy is exec'd, so the PID the driver records, measures (CPU, peak RSS, with its direct
# children) and stops (SIGTERM, then SIGKILL after 5 s) is the proxy's own.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { printf 'usage: weft-hop.sh out|in LISTEN TARGET CERTS PROTO\n' >&2; exit 2; }
die() { printf 'weft-hop: ERROR: %s\n' "$*" >&2; exit 1; }
(($# == 5)) || usage
dir=$1 listen=$2 target=$3 proto=$5
[[ $listen =~ ^[0-9]+$ && $target =~ ^[0-9]+$ ]] || usage
for v in WEFT_BENCH_API WEFT_BENCH_DESTINATION WEFT_BENCH_IDENTITY_ADDR WEFT_BENCH_ANCHORS \
  WEFT_BENCH_TRUST_DOMAIN WEFT_BENCH_H1_AUTHORITY WEFT_BENCH_H2_AUTHORITY WEFT_BENCH_HOPS_DIR; do
  [[ -n ${!v:-} ]] || die "$v is not set: run the bench through bench/run.sh (it starts the control plane)"
done

case $proto in
  h1) authority=$WEFT_BENCH_H1_AUTHORITY ;;
  h2) authority=$WEFT_BENCH_H2_AUTHORITY ;;
  *) usage ;;
esac
service=${authority%%.*}
admin_port=$((listen + ${WEFT_BENCH_ADMIN_OFFSET:-1000}))
api=http://$WEFT_BENCH_API
# One directory and one Workload per start ($$ is the proxy's PID once exec'd): the driver
# measures a noisy path again at once on the same ports, while the previous hops' watchers may
# still be deleting theirs.
out_dir=$WEFT_BENCH_HOPS_DIR/$listen.$$
mkdir -p "$out_dir"

# Drain within the driver's 5 s between SIGTERM and SIGKILL (the environment may override).
export WEFT_PROXY_SHUTDOWN_GRACE_MS=${WEFT_PROXY_SHUTDOWN_GRACE_MS:-2000}

case $dir in
  out) account=bench-client ;;
  in) account=bench ;;
  *) usage ;;
esac
identity=spiffe://$WEFT_BENCH_TRUST_DOMAIN/ns/default/sa/$account

# A one-time bootstrap token for this identity, as `weft run` mints it (docs/identity.md).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-hop.XXXXXX")
chmod 700 "$tmp"
curl -sf --max-time 5 -X POST -H 'content-type: application/json' \
  --data "{\"identity\":\"$identity\"}" "$api/api/v1/identity/tokens" | jq -r .token >"$tmp/token" ||
  die "could not mint a token for $identity at $api"
chmod 600 "$tmp/token"

export WEFT_PROXY_IDENTITY=$identity
export WEFT_PROXY_IDENTITY_ADDR=$WEFT_BENCH_IDENTITY_ADDR
export WEFT_PROXY_IDENTITY_TOKEN_FILE=$tmp/token
export WEFT_PROXY_IDENTITY_TRUST_ANCHORS_FILE=$WEFT_BENCH_ANCHORS
export WEFT_PROXY_DESTINATION_ADDR=$WEFT_BENCH_DESTINATION
export WEFT_PROXY_LOG_LEVEL=${WEFT_PROXY_LOG_LEVEL:-warn}

workload=$service-$listen-$$
if [[ $dir == in ]]; then
  # Registered before the proxy starts (its address and ports are known), as a platform would;
  # the control plane's liveness probes of adminAddress take it out of discovery if the proxy
  # does not come up.
  body=$(jq -nc --arg n "$workload" --arg s "$service" --argjson p "$listen" --arg id "$identity" \
    --arg admin "127.0.0.1:$admin_port" \
    '{resources: [{apiVersion: "weft.io/v1alpha1", kind: "Workload", metadata: {name: $n, namespace: "default"},
      spec: {service: $s, address: "127.0.0.1", port: $p, identity: $id, adminAddress: $admin}}]}')
  curl -sf --max-time 5 -X PUT -H 'content-type: application/json' --data "$body" \
    "$api/api/v1/apply" >/dev/null || die "could not register Workload $workload"
  # Policy: the Servers select the Service's workloads (docs/policy.md "Who the proxy is").
  export WEFT_PROXY_WORKLOAD_SERVICE=$service WEFT_PROXY_WORKLOAD_NAMESPACE=default
  export WEFT_PROXY_WORKLOAD_NAME=$workload
fi

# The watcher. $$ is this script's PID, which is the proxy's once exec'd.
(
  (
    taskset -pc "${WEFT_BENCH_AUX_CPU:-0}" "$BASHPID" >/dev/null 2>&1 || true
    proxy=$$ n=0 anon_max=0 k= v=
    while kill -0 "$proxy" 2>/dev/null; do
      # VmRSS/VmHWM, and the split of VmRSS: RssAnon (the proxy's own memory; its largest sample
      # as RssAnonMax, as the kernel keeps no peak of it) and RssFile (mostly node's binary pages).
      # One process a sample, as before the split: the driver's snapshots of /proc race with
      # short-lived processes.
      if [[ -f $out_dir/mem.txt ]]; then
        while read -r k v; do [[ $k == RssAnonMax: ]] && anon_max=$v; done <"$out_dir/mem.txt"
      fi
      awk -v m="$anon_max" '/^(VmRSS|VmHWM|RssAnon|RssFile):/ {print $1, $2}
        /^RssAnon:/ && $2 > m {m = $2} END {print "RssAnonMax:", m}' \
        "/proc/$proxy/status" >"$out_dir/mem.tmp" 2>/dev/null &&
        mv "$out_dir/mem.tmp" "$out_dir/mem.txt"
      if ((n % 2 == 1)); then
        curl -s --max-time 2 "http://127.0.0.1:$admin_port/metrics" >"$out_dir/metrics.tmp" 2>/dev/null &&
          mv "$out_dir/metrics.tmp" "$out_dir/metrics.txt"
      fi
      n=$((n + 1))
      sleep 1
    done
    if [[ $dir == in ]]; then
      curl -s --max-time 5 -X DELETE "$api/api/v1/namespaces/default/workloads/$workload" >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
  ) </dev/null >/dev/null 2>&1 &
)

common=(--admin-listen-addr "127.0.0.1:$admin_port")
# The proxy's own node flags, as `weft run` starts it (src/proxy/node-flags.ts), then extra ones
# (bench/profile-hops.sh: --cpu-prof ...; not allowed in NODE_OPTIONS), which win when they clash.
read -r -a node_args <<<"$(node --input-type=module -e \
  "console.log((await import('$REPO/dist/src/proxy/node-flags.js')).PROXY_NODE_FLAGS.join(' '))") ${WEFT_BENCH_NODE_ARGS:-}"
if [[ $dir == out ]]; then
  exec node "${node_args[@]}" "$REPO/bin/weft.js" proxy "${common[@]}" \
    --outbound-listen-addr 127.0.0.1:0 \
    --inbound-listen-addr none \
    --upstream "$authority=$listen"
else
  exec node "${node_args[@]}" "$REPO/bin/weft.js" proxy "${common[@]}" \
    --inbound-listen-addr "127.0.0.1:$listen" \
    --outbound-listen-addr none \
    --app-port "$target"
fi
