#!/usr/bin/env bash
# Shell side of tests/support/redis_server.h: a throwaway redis-server on
# 127.0.0.1 for the shared revocation tier's tests (certgate_shared_cache).
# Source it, then:
#   redis_start PORT DIR   # starts redis-server (no persistence, logs in DIR/redis.log),
#                          # waits for PING; its pid in DIR/redis.pid
#   redis_stop DIR         # SIGKILL, as a crash (Redis "killed mid-run")
#   redis_cli PORT ARGS... # redis-cli against it
# A system redis-server (apt starts one on 6379) is never touched: pick another port.

redis_start() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
    --daemonize no --logfile "$dir/redis.log" &
  echo $! >"$dir/redis.pid"
  for _ in $(seq 1 200); do
    [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  echo "redis-server did not answer on 127.0.0.1:$port (see $dir/redis.log)" >&2
  return 1
}

redis_stop() {
  local dir=$1 pid
  pid=$(cat "$dir/redis.pid" 2>/dev/null) || return 0
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$dir/redis.pid"
}

redis_cli() {
  local port=$1
  shift
  redis-cli -h 127.0.0.1 -p "$port" "$@"
}
