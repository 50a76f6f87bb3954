# shellcheck shell=bash
# Shared by the demo and the server benchmarks: check what they need, stop what
# they started, wait for a port, measure server CPU. Source it; it defines
# functions only.

# require_built FILE...: each build output exists, or exit 2 saying how to build it.
require_built() {
  local f
  for f in "$@"; do
    [ -e "$f" ] || { echo "${0##*/}: $f missing: cmake -S . -B build && cmake --build build" >&2; exit 2; }
  done
}

# require_tools TOOL...: each program is on PATH (or an absolute path that exists), or exit 2.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "${0##*/}: $tool not found" >&2; exit 2; }
  done
}

# server_ticks PID: utime+stime (clock ticks) of a server, the master/parent and
# all its children.
server_ticks() {
  local total=0 p t
  for p in "$1" $(ps -o pid= --ppid "$1"); do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || continue
    total=$((total + ${t:-0}))
  done
  echo "$total"
}

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

# nginx_conf_head DIR WORKERS ERROR_LOG [CONNECTIONS]: the top of an nginx.conf
# for an instance living in DIR (foreground, pid and temp paths in DIR), up to
# and including the temp paths inside "http {".
nginx_conf_head() {
  local dir=$1 temp
  printf 'daemon off;\nmaster_process on;\nworker_processes %s;\npid %s/nginx.pid;\n' "$2" "$dir"
  printf 'error_log %s;\nevents { worker_connections %s; }\nhttp {\n' "$3" "${4:-256}"
  for temp in client_body proxy fastcgi uwsgi scgi; do
    printf '    %s_temp_path %s/tmp/%s;\n' "$temp" "$dir" "${temp/client_body/body}"
  done
}

# start_watchdog NAME SECONDS: stops this script (SIGTERM) after SECONDS and
# sets $watchdog to the watcher's pid (kill it on exit). sleep's output goes to
# /dev/null so that it does not hold a pipe on stdout open.
start_watchdog() {
  local name=$1 seconds=$2 script=$$
  (
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$seconds" >/dev/null 2>&1 &
    s=$!
    wait "$s"
    echo "$name: $((seconds / 60)) minutes are up, stopping" >&2
    kill -TERM "$script"
  ) >/dev/null &
  watchdog=$!
}
