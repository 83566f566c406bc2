#!/usr/bin/env bash
# A/B of two nanogate builds on the pinned pass-through: is this change faster or slower than that one?
#
#   B=/path/to/other/checkout bash native-bench/ab.sh        (from the repository root; both must be built)
#   CONFIG_B=conf/policies/x.yaml bash native-bench/ab.sh    (one build, two configs: what does this setting cost?)
#
# A is this checkout, B another one (e.g. `git worktree add --detach ../ref main~5 && (cd ../ref && npm run build)`).
# Both gateways run at once with --workers 1, pinned with the origin (nginx, 1 worker) on CPU 1; wrk runs on CPU 0.
# Rounds alternate A and B (A B, then B A, ...) with DUR-second saturated runs, so whatever the machine does (CPU
# steal on a VM, a neighbour, frequency) lands on both alike; a full native-bench run restarts every config per
# round, which adds start-up variance that swamps a 1-2 µs difference. Prints each round's gateway CPU µs/request
# and req/s, then the medians and the median of the per-pair differences (B minus A).
# SIMUL=1 loads both at once in each round instead (see both()): less noise on a VM whose speed drifts by the second.
# Knobs (env): ROUNDS=10 DUR=3 WARM=2 CONNS=50 BASE_PORT=19400 CONFIG=conf/nanogate.yaml (relative to native-bench/),
# CONFIG_B (B's config, default CONFIG; B defaults to this checkout when CONFIG_B is set), HEADER (one request
# header for every request, e.g. the JWT of conf/policies/rows.json), NB_ACCESS_LOG (default: a file in the run dir),
# NODE_FLAGS_A / NODE_FLAGS_B (node options of each side, e.g. a V8 flag; B defaults to this checkout when set).
# WORKERS=1, GW_CPUS=1 (the CPUs of the gateways and the origin), WRK_CPUS=0: e.g. WORKERS=2 GW_CPUS=0,1 WRK_CPUS=0,1
# for two workers unpinned, where what workers share (cache lines of the shared regions) shows. Two checkouts compared
# that way read B faster by about 0.4 µs in both orders (an A/A of one checkout does not): run both orders and take
# half the difference of the two medians.
# Only 127.0.0.1 is contacted; every wrk run is bounded by -d; the processes started here are stopped by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
A=$(cd "$HERE/.." && pwd)
CONFIG=${CONFIG:-conf/nanogate.yaml}
CONFIG_B=${CONFIG_B:-}
if [ -n "$CONFIG_B" ] || [ -n "${NODE_FLAGS_B:-}" ]; then B=${B:-$A}; CONFIG_B=${CONFIG_B:-$CONFIG}; else B=${B:?set B to the other checkout (built), or CONFIG_B to compare two configs}; CONFIG_B=$CONFIG; fi
B=$(cd "$B" && pwd)
ROUNDS=${ROUNDS:-10}; DUR=${DUR:-3}; WARM=${WARM:-2}; CONNS=${CONNS:-50}; BASE_PORT=${BASE_PORT:-19400}
HEADER=${HEADER:-}
HDR=(); [ -n "$HEADER" ] && HDR=(-H "$HEADER")
ORIGIN_PORT=$BASE_PORT
for r in "$A" "$B"; do [ -f "$r/dist/src/cli/main.js" ] || { echo "!! $r/dist is missing: npm run build there" >&2; exit 1; }; done
for c in nginx wrk curl taskset node; do command -v "$c" >/dev/null || { echo "!! $c is missing" >&2; exit 1; }; done
RUN=$(mktemp -d "${TMPDIR:-/tmp}/nanogate-ab.XXXXXX")
cd "$HERE"

PIDS=()
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [ -n "$st" ] && [ "${st:0:1}" != Z ]; }
stop_all() {
  local p i
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    kill -TERM "$p" 2>/dev/null || continue
    for i in $(seq 1 100); do alive "$p" || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap 'echo "!! interrupted" >&2; exit 130' INT TERM
cpu_ticks() { local t=0 c; for c in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do [ -r /proc/"$c"/stat ] && t=$(( t + $(awk '{sub(/^.*\) /,""); print $12+$13}' /proc/"$c"/stat) )); done; echo $t; }
wait_200() { local i; for i in $(seq 1 150); do [ "$(curl -s "${HDR[@]}" -o /dev/null -w '%{http_code}' --max-time 2 "$1")" = 200 ] && return 0; sleep 0.1; done; echo "!! $1 does not answer 200" >&2; exit 1; }

sed -e "s#__RUN__#$RUN#g" -e "s#__ORIGIN_PORT__#$ORIGIN_PORT#g" conf/origin-nginx.conf > "$RUN/origin.conf"
taskset -c ${GW_CPUS:-1} nginx -c "$RUN/origin.conf" -p "$RUN" -g "daemon off; worker_processes 1;" >>"$RUN/origin.log" 2>&1 &
PIDS+=($!)
wait_200 "http://127.0.0.1:$ORIGIN_PORT/"

declare -A PID PORT
start_gw() { # label root port config node-flags
  NB_ORIGIN_PORT=$ORIGIN_PORT NB_NANOGATE_PORT=$3 NB_NANOGATE_ADMIN_PORT=$(($3 + 1)) NB_ACCESS_LOG=${NB_ACCESS_LOG:-$RUN/access-$1.log} \
    taskset -c ${GW_CPUS:-1} node --no-memory-reducer $5 "$2/bin/nanogate.js" start --config "$HERE/$4" --workers ${WORKERS:-1} >>"$RUN/$1.log" 2>&1 &
  PID[$1]=$!; PORT[$1]=$3; PIDS+=($!)
  wait_200 "http://127.0.0.1:$3/"
  taskset -c ${WRK_CPUS:-0} wrk -t1 -c"$CONNS" -d"${WARM}s" "${HDR[@]}" "http://127.0.0.1:$3/" >/dev/null 2>&1 || true
}
start_gw A "$A" $((BASE_PORT + 10)) "$CONFIG" "${NODE_FLAGS_A:-}"
start_gw B "$B" $((BASE_PORT + 20)) "$CONFIG_B" "${NODE_FLAGS_B:-}"
echo "A=$A ($(git -C "$A" rev-parse --short HEAD 2>/dev/null || echo '?'))  B=$B ($(git -C "$B" rev-parse --short HEAD 2>/dev/null || echo '?'))  config=$CONFIG$([ "$CONFIG_B" != "$CONFIG" ] && echo " / B $CONFIG_B")  load=$(cut -d' ' -f1-3 /proc/loadavg)"

one() { # label -> "cpu_us_per_req rps"
  local s0 s1 out req
  s0=$(cpu_ticks "${PID[$1]}")
  out=$(taskset -c ${WRK_CPUS:-0} wrk -t1 -c"$CONNS" -d"${DUR}s" -s report.lua "${HDR[@]}" "http://127.0.0.1:${PORT[$1]}/" 2>&1 | grep '^JSON ' | sed 's/^JSON //')
  s1=$(cpu_ticks "${PID[$1]}")
  alive "${PID[$1]}" || { echo "!! gateway $1 exited (see $RUN/$1.log)" >&2; exit 1; }
  node -e 'const j=JSON.parse(process.argv[1]);const us=(process.argv[2]/process.argv[3])*1e6/j.requests;process.stdout.write(us.toFixed(2)+" "+Math.round(j.rps))' "$out" $((s1 - s0)) "$(getconf CLK_TCK)"
}
# CPU time of a gateway's process and its children, all threads, in ns (schedstat: finer than clock ticks)
cpu_ns() { local t=0 c f; for c in $1 $(ps -o pid= --ppid "$1" 2>/dev/null); do for f in /proc/"$c"/task/*/schedstat; do [ -r "$f" ] && t=$(( t + $(cut -d' ' -f1 "$f") )); done; done; echo $t; }
# SIMUL=1: both gateways loaded at once, one wrk each (CONNS/2 connections), so that whatever slows the machine
# during a round slows both; each one's CPU per request is its own CPU time over its own requests.
both() { # -> "A_us A_rps B_us B_rps"
  local a0 b0 a1 b1 half=$(( CONNS / 2 ))
  a0=$(cpu_ns "${PID[A]}"); b0=$(cpu_ns "${PID[B]}")
  taskset -c ${WRK_CPUS:-0} wrk -t1 -c"$half" -d"${DUR}s" -s report.lua "${HDR[@]}" "http://127.0.0.1:${PORT[A]}/" >"$RUN/wrk-A" 2>&1 &
  local wa=$!
  taskset -c ${WRK_CPUS:-0} wrk -t1 -c"$half" -d"${DUR}s" -s report.lua "${HDR[@]}" "http://127.0.0.1:${PORT[B]}/" >"$RUN/wrk-B" 2>&1 &
  local wb=$!
  wait $wa $wb || true
  a1=$(cpu_ns "${PID[A]}"); b1=$(cpu_ns "${PID[B]}")
  for l in A B; do alive "${PID[$l]}" || { echo "!! gateway $l exited (see $RUN/$l.log)" >&2; exit 1; }; done
  node -e 'const f=(p,ns)=>{const j=JSON.parse(require("fs").readFileSync(p,"utf8").split("\n").find((l)=>l.startsWith("JSON ")).slice(5));return (ns/1e3/j.requests).toFixed(2)+" "+Math.round(j.rps)};process.stdout.write(f(process.argv[1],process.argv[2])+" "+f(process.argv[3],process.argv[4]))' "$RUN/wrk-A" $((a1 - a0)) "$RUN/wrk-B" $((b1 - b0))
}
RES=()
for r in $(seq 1 "$ROUNDS"); do
  if [ -n "${SIMUL:-}" ]; then
    v=($(both)); RES+=("$r A ${v[0]} ${v[1]}" "$r B ${v[2]} ${v[3]}")
    printf '  round %2d  A %s µs/req %s req/s   B %s µs/req %s req/s\n' "$r" "${v[@]}"
    continue
  fi
  if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for l in $order; do
    v=$(one "$l"); RES+=("$r $l $v")
    printf '  round %2d %s  %s µs/req  %s req/s\n' "$r" "$l" ${v% *} ${v#* }
  done
done
printf '%s\n' "${RES[@]}" | node -e '
  const rows = require("fs").readFileSync(0, "utf8").trim().split("\n").map((l) => l.split(" "));
  const med = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
  const by = (l, i) => rows.filter((r) => r[1] === l).map((r) => Number(r[i]));
  const a = by("A", 2), b = by("B", 2);
  const d = a.map((x, i) => b[i] - x);
  console.log(`median CPU µs/req: A ${med(a).toFixed(2)}  B ${med(b).toFixed(2)}  B-A per round: median ${med(d).toFixed(2)} (min ${Math.min(...d).toFixed(2)}, max ${Math.max(...d).toFixed(2)}, B slower in ${d.filter((x) => x > 0).length} of ${d.length})`);
  console.log(`median req/s: A ${med(by("A", 3))}  B ${med(by("B", 3))}`);
'
rm -rf "$RUN"
