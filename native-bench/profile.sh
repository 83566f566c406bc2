#!/usr/bin/env bash
# Where a config's CPU goes, per request: one pinned nanogate worker under perf, then its samples as µs per request,
# by area (policies, access log, kernel send, GC...) and for the JavaScript functions and kernel entries that cost
# most, inclusive of what they call. The numbers a change should move, before reaching for ab.sh.
#
#   bash native-bench/profile.sh conf/policies/standard.yaml [NAME]      (from the repository root; root for perf)
#   HEADER="$(node -p 'require("./native-bench/conf/policies/rows.json").rows[1].header')" bash native-bench/profile.sh conf/policies/jwt.yaml
#   bash native-bench/profile.sh --report NAME [OTHER]                    (print a saved profile, or the difference)
#
# Same setup as ab.sh: origin nginx and the gateway on CPU 1, wrk -t1 -c50 on CPU 0, warmed up, then DUR seconds
# under perf record -g (cpu-clock at 4,999 Hz: this VM has no hardware counters). Node runs with
# --perf-basic-prof-only-functions so JIT frames have names. Profiles are kept in native-bench/results/profile-NAME/
# (git-ignored). Knobs: DUR=5 WARM=3 CONNS=50 BASE_PORT=19600 HEADER, ROOT (another built checkout), NODE_FLAGS,
# UNPINNED=1 (nothing pinned, default workers), PACE_MS (light load instead of saturation: each connection waits PACE_MS after a response, as run.sh's paced runs;
# wrk's connections fall into step, so requests come in bursts), RATE (light load, evenly spaced: RATE requests a
# second from the bench harness's open-loop generator, each request on its own, as `nanogate bench` sends them).
# Only 127.0.0.1 is contacted; wrk runs are bounded by -d; the processes started here are stopped by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = "--report" ]; then exec node "$HERE/profile-report.js" "$HERE/results" "${@:2}"; fi
CONF=${1:?usage: profile.sh <config relative to native-bench/> [name]}
NAME=${2:-$(basename "$CONF" .yaml)}
ROOT=${ROOT:-$(cd "$HERE/.." && pwd)}
DUR=${DUR:-5}; WARM=${WARM:-3}; CONNS=${CONNS:-50}; BASE_PORT=${BASE_PORT:-19600}
HDR=(); [ -n "${HEADER:-}" ] && HDR=(-H "$HEADER")
for c in nginx wrk curl taskset node perf; do command -v "$c" >/dev/null || { echo "!! $c is missing" >&2; exit 1; }; done
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "!! $ROOT/dist is missing: npm run build there" >&2; exit 1; }
# UNPINNED=1: nothing pinned and the gateway on its default worker count, as native-bench's unpinned rows
if [ -n "${UNPINNED:-}" ]; then ON0=(); ON1=(); WORKERS=(); else ON0=(taskset -c 0); ON1=(taskset -c 1); WORKERS=(--workers 1); fi
OUT="$HERE/results/profile-$NAME"
mkdir -p "$OUT"
RUN=$(mktemp -d "${TMPDIR:-/tmp}/nanogate-profile.XXXXXX")
PIDS=()
stop_all() {
  local p i
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    kill -TERM "$p" 2>/dev/null || continue
    for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
  done
  rm -rf "$RUN"
}
trap stop_all EXIT
cd "$HERE"
OP=$BASE_PORT; GP=$((BASE_PORT + 10))
sed -e "s#__RUN__#$RUN#g" -e "s#__ORIGIN_PORT__#$OP#g" conf/origin-nginx.conf > "$RUN/origin.conf"
"${ON1[@]}" nginx -c "$RUN/origin.conf" -p "$RUN" -g "daemon off; worker_processes 1;" >>"$RUN/origin.log" 2>&1 &
PIDS+=($!)
NB_ORIGIN_PORT=$OP NB_NANOGATE_PORT=$GP NB_NANOGATE_ADMIN_PORT=$((GP + 1)) NB_ACCESS_LOG=$RUN/access.log \
  "${ON1[@]}" node --no-memory-reducer ${NODE_FLAGS:-} --perf-basic-prof-only-functions "$ROOT/bin/nanogate.js" start --config "$HERE/$CONF" "${WORKERS[@]}" >"$RUN/gateway.log" 2>&1 &
GW=$!; PIDS+=($GW)
ok=
for i in $(seq 1 150); do [ "$(curl -s "${HDR[@]}" -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$GP/")" = 200 ] && { ok=1; break; }; sleep 0.1; done
[ -n "$ok" ] || { echo "!! the gateway does not answer 200 (see below)" >&2; tail -5 "$RUN/gateway.log" >&2; exit 1; }
"${ON0[@]}" wrk -t1 -c"$CONNS" -d"${WARM}s" "${HDR[@]}" "http://127.0.0.1:$GP/" >/dev/null
perf record -g -F 4999 -e cpu-clock -p "$GW" -o "$OUT/perf.data" -- sleep "$DUR" >/dev/null 2>&1 &
PERF=$!
if [ -n "${RATE:-}" ]; then
  # light load, evenly spaced: one request every 1/RATE s (the bench harness's open-loop generator)
  "${ON0[@]}" node "$HERE/openloop.mjs" "$ROOT" "$GP" "$RATE" "$DUR" "${HEADER:-}" > "$OUT/wrk.txt"
elif [ -n "${PACE_MS:-}" ]; then
  # light load: each connection waits PACE_MS after a response (report.lua), ~2,000 req/s at 24 ms with 50 connections
  PACE_MS=$PACE_MS "${ON0[@]}" wrk -t1 -c"$CONNS" -d"${DUR}s" "${HDR[@]}" -s report.lua "http://127.0.0.1:$GP/" > "$OUT/wrk.txt"
else
  "${ON0[@]}" wrk -t1 -c"$CONNS" -d"${DUR}s" "${HDR[@]}" "http://127.0.0.1:$GP/" > "$OUT/wrk.txt"
fi
wait "$PERF" || true
# symbolised now, while node's JIT map (/tmp/perf-<pid>.map) is there
perf script -i "$OUT/perf.data" -F ip,sym > "$OUT/stacks.txt" 2>/dev/null
rm -f "$OUT/perf.data" "/tmp/perf-$GW.map"
grep -E "Requests/sec|requests in" "$OUT/wrk.txt" || { echo "!! the load run failed (see $OUT/wrk.txt)" >&2; exit 1; }
node "$HERE/profile-report.js" "$HERE/results" "$NAME"
