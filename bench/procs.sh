# bench/procs.sh - sourced by the bench scripts: the server processes a script started (PIDS), how
# they are stopped, and the CPU pinning of the shared driver (PIN, SUT_CPU, LOADGEN_CPU).
# STOP_WAIT_TENTHS (default 50): how long a process gets after SIGTERM before SIGKILL, in 0.1 s
# (a hop under --cpu-prof needs longer to write its profile).

PIDS=()

# pid : SIGKILL unless it exits within STOP_WAIT_TENTHS of a SIGTERM already sent, then reap it.
await_or_kill() {
  local pid=$1 _
  for _ in $(seq 1 "${STOP_WAIT_TENTHS:-50}"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# pid : SIGTERM, then await_or_kill.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  await_or_kill "$1"
}

# Stops every process in PIDS (all are sent SIGTERM first, so they wind down together).
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do await_or_kill "$pid"; done
  PIDS=()
}

# Command prefixes that pin a process to the measured core or the load generator's core.
sut() { if [[ ${PIN:-1} == 1 ]]; then echo taskset -c "${SUT_CPU:-0}"; fi; }
loadgen() { if [[ ${PIN:-1} == 1 ]]; then echo taskset -c "${LOADGEN_CPU:-1}"; fi; }
