#!/usr/bin/env bash
# TLS figures, bounded: HTTPS pass-through (keep-alive) and TLS handshakes per second (a new connection per request,
# no session resumption) through nanogate (--workers 1) and nginx (1 worker) with the same demo certificate, and the
# plain-HTTP nanogate row as the baseline; then new connections while the certificate is reloaded every 0.5 s,
# counting failed requests. wrk on CPU 0; origin and proxy on CPU 1 (as run.sh). DUR seconds per run (default 5).
#   bash native-bench/tls.sh        (from the repository root, after npm run build)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "$HERE/.." && pwd)
DUR=${DUR:-5}; CONNS=${CONNS:-50}; BASE=${BASE_PORT:-19400}
ORIGIN=$BASE; NGINX=$((BASE + 81)); NG=$((BASE + 90)); NGA=$((BASE + 91))
RUN=$(mktemp -d /tmp/nanogate-tls-bench.XXXXXX); CERTS="$RUN/certs"
cp -r "$ROOT/config/examples/certs" "$CERTS"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
conf() { sed -e "s#__RUN__#$RUN#g" -e "s#__ORIGIN_PORT__#$ORIGIN#g" -e "s#__NGINX_PORT__#$NGINX#g" -e "s#__CERTS__#$CERTS#g" "$1" > "$2"; }
conf "$HERE/conf/origin-nginx.conf" "$RUN/origin.conf"; conf "$HERE/conf/proxy-nginx-https.conf" "$RUN/nginx-https.conf"
taskset -c 1 nginx -c "$RUN/origin.conf" -p "$RUN" -g "daemon off; worker_processes 1;" >"$RUN/origin.log" 2>&1 & PIDS+=($!)
wait_port() { for _ in $(seq 100); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done; echo "!! $1 does not answer" >&2; return 1; }
wait_port "http://127.0.0.1:$ORIGIN/"
export NB_ORIGIN_PORT=$ORIGIN NB_NANOGATE_PORT=$NG NB_NANOGATE_ADMIN_PORT=$NGA NB_CERTS=$CERTS
measure() { # row url [extra wrk args]
  local row=$1 url=$2; shift 2
  taskset -c 0 wrk -t1 -c"$CONNS" -d1s "$@" "$url" >/dev/null 2>&1 || true
  local out; out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${DUR}s" "$@" "$url" 2>&1)
  printf '%-26s %10s req/s   errors: %s\n' "$row" "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" "$(echo "$out" | grep -E 'Socket errors|Non-2xx' | tr '\n' ' ' || true)"
}
run_nanogate() { # config
  taskset -c 1 node --no-memory-reducer "$ROOT/bin/nanogate.js" start --config "$1" --workers 1 >"$RUN/nanogate.log" 2>&1 & NGPID=$!; PIDS+=($NGPID)
  wait_port "$2"
}
echo "== $(date -u +%FT%TZ) $(nproc) CPUs shared with other work; wrk -t1 -c$CONNS -d${DUR}s; origin nginx; 100-byte body"
run_nanogate "$HERE/conf/nanogate.yaml" "http://127.0.0.1:$NG/"
measure nanogate-1w-http "http://127.0.0.1:$NG/"
measure nanogate-1w-http-close "http://127.0.0.1:$NG/" -H 'Connection: close'
kill "$NGPID"; wait "$NGPID" 2>/dev/null || true
run_nanogate "$HERE/conf/nanogate-https.yaml" "https://127.0.0.1:$NG/"
measure nanogate-1w-https "https://127.0.0.1:$NG/"
measure nanogate-1w-https-handshake "https://127.0.0.1:$NG/" -H 'Connection: close'
# reload under load: new certificate files every 0.5 s while new connections keep coming
( for i in $(seq $((DUR * 2))); do sleep 0.5; sh "$ROOT/scripts/make-demo-certs.sh" "$CERTS" >/dev/null; done ) & RL=$!; PIDS+=($RL)
measure nanogate-https-reloading "https://127.0.0.1:$NG/" -H 'Connection: close'
wait "$RL" 2>/dev/null || true
echo "reloads applied: $(grep -c 'reloaded after a certificate file change' "$RUN/nanogate.log" || true), refused: $(grep -c 'certificate change refused' "$RUN/nanogate.log" || true)"
kill "$NGPID"; wait "$NGPID" 2>/dev/null || true
taskset -c 1 nginx -c "$RUN/nginx-https.conf" -p "$RUN" -g "daemon off; worker_processes 1;" >"$RUN/nginx.log" 2>&1 & PIDS+=($!)
wait_port "https://127.0.0.1:$NGINX/"
measure nginx-https "https://127.0.0.1:$NGINX/"
measure nginx-https-handshake "https://127.0.0.1:$NGINX/" -H 'Connection: close'
rm -rf "$RUN"
