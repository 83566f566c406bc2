#!/usr/bin/env bash
# Which property accesses in the gateway's optimized code V8 left generic (inline-cache builtin calls): one row of
# conf/policies/rows.json runs under --trace-turbo for DUR seconds of wrk load, then generic-access-report.js lists,
# per optimized function of the gateway, the accesses left generic with the source around each. Run it after a change
# to a request-path object's shape; read it beside instructions.sh (KEEP=1) and instructions-report.js --callers.
#
#   bash native-bench/generic-access.sh [row]          (from the repository root; row: pass by default)
#
# Knobs (env): DUR=8 CONNS=20 FILTER='*' (V8's --trace-turbo-filter: one function name, or * for all)
# BASE_PORT=19760 KEEP=1 (keep the graphs: about 1 GB with FILTER='*').
# Tracing slows the gateway about tenfold; the load is bounded by -d. Only 127.0.0.1 is contacted; every process
# started here is stopped by its PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
ROW=${1:-pass}; DUR=${DUR:-8}; CONNS=${CONNS:-20}; FILTER=${FILTER:-*}; BASE_PORT=${BASE_PORT:-19760}
OP=$BASE_PORT; GP=$((BASE_PORT + 10))
for c in nginx wrk curl node; do command -v "$c" >/dev/null || { echo "!! $c is missing" >&2; exit 1; }; done
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "!! dist is missing: npm run build" >&2; exit 1; }
field() { node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).rows.find((x)=>x.row===process.argv[2]);process.stdout.write(String((r&&r[process.argv[3]])||""))' "$HERE/conf/policies/rows.json" "$1" "$2"; }
CONF=$(field "$ROW" config); HEADER=$(field "$ROW" header)
[ -n "$CONF" ] || { echo "!! no row \"$ROW\" in conf/policies/rows.json" >&2; exit 1; }
RUN="$HERE/results/turbo-$(date -u +%Y%m%dT%H%M%SZ)"; mkdir -p "$RUN"
PIDS=()
stop_all() { local p; for p in "${PIDS[@]:-}"; do kill -TERM "$p" 2>/dev/null || true; done; sleep 1; for p in "${PIDS[@]:-}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap stop_all EXIT
cd "$HERE"
sed -e "s#__RUN__#$RUN#g" -e "s#__ORIGIN_PORT__#$OP#g" conf/origin-nginx.conf > "$RUN/origin.conf"
nginx -c "$RUN/origin.conf" -p "$RUN" -g "daemon off; worker_processes 1;" >>"$RUN/origin.log" 2>&1 &
PIDS+=($!)
# node writes turbo-*.cfg files to its working directory whatever the path flag says: run it in the run directory
(cd "$RUN" && NB_ORIGIN_PORT=$OP NB_NANOGATE_PORT=$GP NB_NANOGATE_ADMIN_PORT=$((GP + 1)) NB_ACCESS_LOG=$RUN/access.log \
  exec node --trace-turbo --trace-turbo-path="$RUN" --trace-turbo-filter="$FILTER" "$ROOT/bin/nanogate.js" start \
  --config "$HERE/conf/policies/$CONF" --workers 1 >"$RUN/gateway.log" 2>&1) &
GW=$!; PIDS+=($GW)
HDR=(); [ -n "$HEADER" ] && HDR=(-H "$HEADER")
for i in $(seq 1 240); do
  [ "$(curl -s "${HDR[@]}" -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$GP/")" = 200 ] && break
  [ "$i" = 240 ] && { echo "!! the gateway does not answer 200 (see $RUN/gateway.log)" >&2; exit 1; }
  sleep 0.5
done
wrk -t1 -c"$CONNS" -d"${DUR}s" "${HDR[@]}" "http://127.0.0.1:$GP/" > "$RUN/wrk.txt"
kill -INT "$GW" 2>/dev/null || true
for i in $(seq 1 100); do kill -0 "$GW" 2>/dev/null || break; sleep 0.1; done
echo "== row $ROW, $(grep Requests/sec "$RUN/wrk.txt" | tr -s ' ') under tracing"
node "$HERE/generic-access-report.js" "$RUN" | tee "$RUN/generic-access.txt"
[ -n "${KEEP:-}" ] || rm -f "$RUN"/turbo-*.json "$RUN"/turbo-*.cfg
echo "== wrote $RUN/generic-access.txt"
