# shellcheck shell=bash
# Shared by the demo and the server benchmarks: stop what they started, wait
# for a port. Source it; it defines functions only.

# stop_pids PID...: TERM each, give it 5 s, then KILL; reap.
stop_pids() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT (default 10 s).
wait_port() {
  local tries=$(( ${2:-10} * 20 ))
  for _ in $(seq "$tries"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "${0##*/}: nothing listens on 127.0.0.1:$1" >&2
  return 1
}
