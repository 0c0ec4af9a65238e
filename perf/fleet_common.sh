# The fleet's set-up shared by perf/fleet.sh and perf/freshness.sh (sourced, not run): moto's
# S3 server on loopback with bucket `perf`, and replicas that follow a store.
# Needs: $work, $bin, $replicas set by the caller; REPLICA_DIR (default $work) holds the
# replicas' data directories (another file system, when the disk is short).
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { date +%s%3N; }
cpu_ms() { # pid: its user+system CPU time so far, ms
  awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"
}

# Starts moto (kept in $moto_pid, and in $pids, which the EXIT trap stops) and its bucket.
start_moto() {
  moto_port=$(port)
  export AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
  python3 -m moto.server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
  moto_pid=$!
  pids=($!)
  trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
  until curl -s -o /dev/null "$AWS_ENDPOINT_URL"; do sleep 0.1; done
  curl -s -X PUT "$AWS_ENDPOINT_URL/perf" >/dev/null
}

# Starts $replicas replicas following store $1, one core each (their pids in $replica_pids;
# replica i's HTTP port in $work/r<i>.http, its log in $work/r<i>.log).
start_replicas() {
  replica_pids=()
  local i http
  for i in $(seq "$replicas"); do
    http=$(port)
    echo "$http" >"$work/r$i.http"
    "$bin/shikaku" serve --threads 1 --resp "127.0.0.1:$(port)" --http "127.0.0.1:$http" \
      --data "${REPLICA_DIR:-$work}/r$i" --follow "$1" --replica-id "r$i" 2>"$work/r$i.log" >/dev/null &
    pids+=($!)
    replica_pids+=($!)
  done
}

serving() { # replica: the generation it serves
  curl -s "http://127.0.0.1:$(cat "$work/r$1.http")/v1/generation" | grep -o '^{"id":"[^"]*"' | cut -d'"' -f4 || true
}

until_live() { # generation: until every replica serves it
  local i
  for i in $(seq "$replicas"); do
    until [ "$(serving "$i")" = "$1" ]; do sleep 0.01; done
  done
}
