#!/usr/bin/env bash
# A 3-master Redis Cluster from Debian's redis-server, for the worker's cluster-mode tests.
#   .ci/redis-cluster.sh start DIR PORT   masters on PORT, PORT+1, PORT+2 (cluster bus: +10000)
#   .ci/redis-cluster.sh stop DIR
set -euo pipefail
cmd=$1 dir=$2
case "$cmd" in
start)
  port=$3
  mkdir -p "$dir"
  nodes=()
  for i in 0 1 2; do
    p=$((port + i))
    mkdir -p "$dir/$p"
    redis-server --daemonize yes --port "$p" --bind 127.0.0.1 --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "$dir/$p/nodes.conf" --cluster-node-timeout 5000 \
      --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log" --dir "$dir/$p"
    nodes+=("127.0.0.1:$p")
  done
  for i in $(seq 50); do
    redis-cli -p "$((port + 2))" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log"
  for i in $(seq 100); do
    if redis-cli -p "$port" cluster info | grep -q "cluster_state:ok"; then
      echo "Redis Cluster of 3 masters on 127.0.0.1:$port-$((port + 2))"
      exit 0
    fi
    sleep 0.2
  done
  echo "the Redis Cluster did not reach cluster_state:ok; see $dir" >&2
  exit 1
  ;;
stop)
  for pid in "$dir"/*/redis.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  exit 0
  ;;
*)
  echo "usage: $0 start DIR PORT | stop DIR" >&2
  exit 2
  ;;
esac
