#!/usr/bin/env bash
# setup.sh - make this checkout ready to build, test, demo and bench Weft.
#
#   bash scripts/setup.sh            npm ci (only when node_modules is missing or older than
#                                    package-lock.json), then npm run build
#   bash scripts/setup.sh --system   first apt-get install the Debian 12 packages that the tests
#                                    and the bench use, only those whose command is missing (root)
#
# Idempotent: a second run installs nothing and only rebuilds. Silent on success except for one
# line per thing it does; on failure it prints the failing command's last lines of output.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

# Debian package -> a command that proves it is installed.
SYSTEM_PACKAGES=(
  prometheus:promtool # promtool check metrics; tests start prometheus itself
  curl:curl
  nghttp2-client:h2load
  openssl:openssl
  haproxy:haproxy # bench peer
  nginx:nginx     # bench peer and upstream
  wrk:wrk
  hey:hey
  util-linux:taskset
  procps:ps
  iproute2:ip     # network namespaces
  iptables:iptables # transparent capture
)
# haproxy, nginx, ip and iptables live in sbin, which a non-login shell may not have in PATH.
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-setup.XXXXXX")
POLICY_RC=/usr/sbin/policy-rc.d
OWN_POLICY_RC=0
cleanup() {
  if ((OWN_POLICY_RC)); then rm -f "$POLICY_RC"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

quiet() { # name cmd... : run cmd with its output kept aside; on failure show the end of it and stop
  local name=$1
  shift
  if ! "$@" >"$WORK/$name.log" 2>&1 </dev/null; then
    say "ERROR: '$*' failed; its last lines:"
    tail -n 40 "$WORK/$name.log" >&2
    exit 1
  fi
}

missing_packages() { # -> Debian packages whose command is not found, one per line
  local entry
  for entry in "${SYSTEM_PACKAGES[@]}"; do
    command -v "${entry#*:}" >/dev/null 2>&1 || echo "${entry%%:*}"
  done
}

install_system_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]})) || return 0
  if [[ $(id -u) != 0 ]]; then
    die "missing Debian packages: ${missing[*]}. As root run: bash scripts/setup.sh --system" \
      "(or: apt-get update && apt-get install -y ${missing[*]})"
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: ${missing[*]}"
  say "installing Debian packages: ${missing[*]}"
  # Packages must not start services (nginx on :80, haproxy, prometheus): the project's own
  # scripts start what they need. Containers usually have this policy already.
  if [[ ! -e $POLICY_RC ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
    chmod 755 "$POLICY_RC"
    OWN_POLICY_RC=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  local apt=(apt-get -q -o DPkg::Lock::Timeout=120)
  quiet apt-update "${apt[@]}" update
  quiet apt-install "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
  mapfile -t missing < <(missing_packages)
  ((${#missing[@]} == 0)) || die "still missing after apt-get install: ${missing[*]}"
}

check_node() {
  command -v node >/dev/null 2>&1 || die "node not found; Weft needs Node.js 20 or later"
  command -v npm >/dev/null 2>&1 || die "npm not found; Weft needs Node.js 20 or later with npm"
  node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    die "Node.js $(node --version) is too old; Weft needs 20 or later"
}

install_npm_packages() {
  [[ -f package-lock.json ]] || die "package-lock.json is missing (run npm install once and commit it)"
  # npm rewrites node_modules/.package-lock.json on every install: it dates node_modules.
  local stamp=node_modules/.package-lock.json
  if [[ ! -e $stamp || package-lock.json -nt $stamp ]]; then
    say "installing npm packages (npm ci)"
    quiet npm-ci npm ci --no-audit --no-fund --loglevel=error
  fi
}

# tsc never deletes outputs whose source was removed or renamed, and `node --test dist/` would
# still run such a stale test. Remove them (tsconfig rootDir "." : dist/X.js comes from X.ts);
# the build that follows recreates every output that has a source.
prune_stale_outputs() {
  [[ -d dist ]] || return 0
  local f rel src
  while IFS= read -r -d '' f; do
    rel=${f#dist/}
    case $rel in
      *.d.ts.map) src=${rel%.d.ts.map}.ts ;;
      *.d.ts) src=${rel%.d.ts}.ts ;;
      *.js.map) src=${rel%.js.map}.ts ;;
      *.js) src=${rel%.js}.ts ;;
      *) continue ;;
    esac
    [[ -e $src || -e ${src}x ]] || rm -f "$f"
  done < <(find dist -type f \( -name '*.js' -o -name '*.map' -o -name '*.d.ts' \) -print0)
}

case ${1:-} in
  --system) install_system_packages ;;
  '') ;;
  *) die "usage: bash scripts/setup.sh [--system]" ;;
esac
check_node
install_npm_packages
prune_stale_outputs
quiet build npm run build
say "ready (built dist/)"
