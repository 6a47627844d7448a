#!/usr/bin/env bash
# weft-hop.sh - one Weft proxy as one hop of the shared bench (bench/run.sh passes it to
# ../shared/bench/run.sh as CUSTOM_OUT_CMD and CUSTOM_IN_CMD).
#
#   weft-hop.sh out LISTEN TARGET CERTS PROTO
#       outbound proxy on 127.0.0.1:LISTEN; the authorities the load tools send
#       (127.0.0.1:LISTEN, and localhost:LISTEN for a curl by hand) go to one meshed endpoint,
#       the inbound hop on 127.0.0.1:TARGET
#   weft-hop.sh in LISTEN TARGET CERTS PROTO
#       inbound proxy on 127.0.0.1:LISTEN in front of the app (the bench upstream) on
#       127.0.0.1:TARGET
#
# CERTS is ignored for now: mTLS between Weft proxies does not exist yet, so the hop between the
# two proxies is plaintext; compare with haproxy-plain and node-plain, not the *-mtls rows. When
# the proxy gets mTLS, the bench CA and certificates in CERTS are what to give it here.
# PROTO (h1 or h2) is ignored: the proxy detects the protocol of every connection.
#
# The proxy is exec'd, so the PID the driver records, measures (CPU, peak RSS, with its direct
# children) and stops (SIGTERM, then SIGKILL after 5 s) is the proxy's own.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { printf 'usage: weft-hop.sh out|in LISTEN TARGET CERTS PROTO\n' >&2; exit 2; }
(($# == 5)) || usage
dir=$1 listen=$2 target=$3
[[ $listen =~ ^[0-9]+$ && $target =~ ^[0-9]+$ ]] || usage

# Drain within the driver's 5 s between SIGTERM and SIGKILL (the environment may override).
export WEFT_PROXY_SHUTDOWN_GRACE_MS=${WEFT_PROXY_SHUTDOWN_GRACE_MS:-2000}

case $dir in
  out)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-hop.XXXXXX")
    destinations=$tmp/destinations.yaml
    {
      echo 'destinations:'
      for authority in "127.0.0.1:$listen" "localhost:$listen"; do
        echo "  - authority: $authority"
        echo '    endpoints:'
        echo "      - address: 127.0.0.1:$target"
        echo '        meshed: true'
      done
    } >"$destinations"
    # The proxy watches the file, so it must outlive this script. A detached watcher (reparented
    # away from the proxy, so the driver does not count it as the proxy's child) removes it once
    # this PID, which is the proxy's after exec, is gone.
    ( (tail --pid=$$ -f /dev/null; rm -rf "$tmp") </dev/null >/dev/null 2>&1 &)
    exec node "$REPO/bin/weft.js" proxy \
      --outbound-listen-addr "127.0.0.1:$listen" \
      --inbound-listen-addr none \
      --admin-listen-addr 127.0.0.1:0 \
      --destinations "$destinations"
    ;;
  in)
    exec node "$REPO/bin/weft.js" proxy \
      --inbound-listen-addr "127.0.0.1:$listen" \
      --outbound-listen-addr none \
      --admin-listen-addr 127.0.0.1:0 \
      --app-port "$target"
    ;;
  *) usage ;;
esac
