#!/usr/bin/env bash
# What each policy costs in instructions per request: the rows of conf/policies/rows.json (pass-through, each policy
# alone, the standard set), one nanogate worker under valgrind's callgrind, a fixed number of requests counted in the
# worker thread. An instruction count does not drift with the machine: the windows of a row mostly agree within 1 %
# whatever else the VM is doing (now and then one reads up to 8 % off: a mark-compact GC, the JIT still at work), where
# the CPU µs/req of run.sh MODE=policies spread by ±4 µs on a bad day and a sub-µs policy could not be told from zero.
# It counts user space only (the kernel's send/receive is the same in every row) and does not weigh cache misses;
# read it beside MODE=policies, not instead.
#
#   bash native-bench/instructions.sh                  (from the repository root; every row, ~1 min a row)
#   bash native-bench/instructions.sh pass access-log  (some rows; a row's base row is added when missing)
#
# Per row: the gateway starts under callgrind with instrumentation off, is warmed up (WARM_N requests: the JIT
# settles), then WINDOWS windows of N requests each run with instrumentation on, each dumped apart. The worker thread is
# the one with the most instructions in a window; its count / N is the row's figure (median of windows).
# To put counts on a time scale, the pass-through row also runs natively once (pinned, wrk, NATIVE_DUR s) and its
# worker thread's user CPU per request gives instructions per µs on this machine today: the µs column is
# Δinstructions / that rate, an estimate that moves with the machine, unlike the counts beside it.
# Knobs (env): N=8000 WARM_N=40000 WINDOWS=5 CONNS=20 NATIVE_DUR=5 (0: no native run) BASE_PORT=19700 ROOT
# (another built checkout), NODE_FLAGS, KEEP=1 (keep the dumps and node's JIT map: native-bench/instructions-report.js
# then lists a row's instructions by function, JavaScript included, or two rows' difference), GATE=1 (exit 1 when a
# row counts more than its maxInstructions in rows.json, or had failed requests: a regression gate that the
# machine's noise does not trip).
# Only 127.0.0.1 is contacted; every process started here is stopped by its PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${ROOT:-$(cd "$HERE/.." && pwd)}
N=${N:-8000}; WARM_N=${WARM_N:-40000}; WINDOWS=${WINDOWS:-5}; CONNS=${CONNS:-20}; NATIVE_DUR=${NATIVE_DUR:-5}
BASE_PORT=${BASE_PORT:-19700}; OP=$BASE_PORT; GP=$((BASE_PORT + 10))
for c in nginx valgrind callgrind_control curl taskset node; do command -v "$c" >/dev/null || { echo "!! $c is missing" >&2; exit 1; }; done
[ "$NATIVE_DUR" = 0 ] || command -v wrk >/dev/null || { echo "!! wrk is missing (or NATIVE_DUR=0)" >&2; exit 1; }
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "!! $ROOT/dist is missing: npm run build there" >&2; exit 1; }
ROWS_JSON="$HERE/conf/policies/rows.json"
field() { node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).rows.find((x)=>x.row===process.argv[2]);process.stdout.write(String((r&&r[process.argv[3]])||""))' "$ROWS_JSON" "$1" "$2"; }
ROWS=("$@")
if [ ${#ROWS[@]} -eq 0 ]; then
  read -r -a ROWS <<<"$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).rows.map((r)=>r.row).join(" "))' "$ROWS_JSON")"
fi
# every row's base row is measured too (its count is what the row's is compared with)
for r in "${ROWS[@]}"; do
  [ -n "$(field "$r" config)" ] || { echo "!! no row \"$r\" in $ROWS_JSON" >&2; exit 1; }
  b=$(field "$r" base)
  if [ -n "$b" ] && [[ " ${ROWS[*]} " != *" $b "* ]]; then ROWS=("$b" "${ROWS[@]}"); fi
done
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="$HERE/results/instr-$STAMP"; mkdir -p "$RUN"
PIDS=()
stop() { # pid: TERM, then KILL after 20 s (valgrind exits slowly)
  local p=$1 i
  kill -TERM "$p" 2>/dev/null || return 0
  for i in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
}
stop_all() { local p; for p in "${PIDS[@]:-}"; do [ -n "$p" ] && stop "$p"; done; }
trap stop_all EXIT
cd "$HERE"
{
  echo "date_utc=$(date -u '+%Y-%m-%d %H:%M:%SZ')"
  echo "node=$(node --version)"
  echo "valgrind=$(valgrind --version)"
  echo "nanogate=$(node -p "require('$ROOT/package.json').version") ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo "load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "n=$N warm_n=$WARM_N windows=$WINDOWS conns=$CONNS"
} > "$RUN/versions.txt"
sed -e "s#__RUN__#$RUN#g" -e "s#__ORIGIN_PORT__#$OP#g" conf/origin-nginx.conf > "$RUN/origin.conf"
taskset -c 1 nginx -c "$RUN/origin.conf" -p "$RUN" -g "daemon off; worker_processes 1;" >>"$RUN/origin.log" 2>&1 &
PIDS+=($!)

wait_200() { # header -> 0 once the gateway answers 200 (up to 120 s: valgrind starts node slowly)
  local i
  for i in $(seq 1 600); do
    [ "$(curl -s ${1:+-H "$1"} -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$GP/")" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}
start_gateway() { # config [wrapper...]: starts it pinned on CPU 1 with the run's environment; sets GW
  local conf=$1; shift
  NB_ORIGIN_PORT=$OP NB_NANOGATE_PORT=$GP NB_NANOGATE_ADMIN_PORT=$((GP + 1)) NB_ACCESS_LOG=$RUN/access.log \
    taskset -c 1 "$@" node --no-memory-reducer ${NODE_FLAGS:-} "$ROOT/bin/nanogate.js" start --config "$HERE/conf/policies/$conf" --workers 1 >"$RUN/gateway-$ROW.log" 2>&1 &
  GW=$!; PIDS+=($GW)
}

for ROW in "${ROWS[@]}"; do
  conf=$(field "$ROW" config); header=$(field "$ROW" header)
  NODE_FLAGS=${NODE_FLAGS:-${KEEP:+--perf-basic-prof-only-functions}} start_gateway "$conf" valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes --smc-check=all-non-file \
    --callgrind-out-file="$RUN/cg-$ROW.%p"
  wait_200 "$header" || { echo "!! $ROW: the gateway does not answer 200 (see $RUN/gateway-$ROW.log)" >&2; exit 1; }
  taskset -c 0 node fixed-count.mjs "$ROOT" "$GP" "$WARM_N" "$CONNS" "$header" > "$RUN/warm-$ROW.json"
  for w in $(seq 1 "$WINDOWS"); do
    callgrind_control -i on "$GW" >/dev/null 2>&1
    taskset -c 0 node fixed-count.mjs "$ROOT" "$GP" "$N" "$CONNS" "$header" > "$RUN/window-$ROW.$w.json"
    callgrind_control -i off "$GW" >/dev/null 2>&1
    callgrind_control -d "$GW" >/dev/null 2>&1
  done
  stop "$GW"
  # one line per window: the instruction total of every thread in that dump
  node -e '
    const fs = require("fs"), path = require("path");
    const [dir, row, pid, windows] = process.argv.slice(1);
    for (let w = 1; w <= Number(windows); w++) {
      const threads = {};
      for (const f of fs.readdirSync(dir)) {
        const m = new RegExp(`^cg-${row}\\.${pid}\\.${w}-(\\d+)$`).exec(f);
        if (!m) continue;
        const t = /^totals: (\d+)/m.exec(fs.readFileSync(path.join(dir, f), "utf8"));
        threads[m[1]] = t ? Number(t[1]) : 0;
      }
      const load = JSON.parse(fs.readFileSync(path.join(dir, `window-${row}.${w}.json`), "utf8"));
      console.log(JSON.stringify({ row, window: w, ...load, threads }));
    }' "$RUN" "$ROW" "$GW" "$WINDOWS" >> "$RUN/counts.jsonl"
  if [ -n "${KEEP:-}" ]; then
    # node's map of its JIT code (KEEP adds --perf-basic-prof-only-functions): instructions-report.js names it
    [ -f "/tmp/perf-$GW.map" ] && mv "/tmp/perf-$GW.map" "$RUN/perf-$ROW.map"
  else
    rm -f "$RUN"/cg-"$ROW".*
  fi
  echo "  $ROW: $(tail -n "$WINDOWS" "$RUN/counts.jsonl" | node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>{console.log(s.trim().split("\n").map((l)=>{const r=JSON.parse(l);return (Math.max(...Object.values(r.threads))/r.requests/1000).toFixed(1)+"k instr/req ("+r.ok+" ok, "+r.failed+" failed)"}).join(", "))})')"
done

if [ "$NATIVE_DUR" != 0 ]; then
  # the pass-through natively: the worker thread's user CPU per request (utime of /proc/<pid>/task/<tid>/stat)
  ROW=native-pass
  start_gateway "$(field pass config)"
  wait_200 "" || { echo "!! native pass: no 200" >&2; exit 1; }
  taskset -c 0 wrk -t1 -c50 -d2s "http://127.0.0.1:$GP/" >/dev/null
  ticks() { local t; for t in /proc/"$GW"/task/*; do echo "${t##*/} $(awk '{print $14}' "$t/stat" 2>/dev/null || echo 0)"; done; }
  ticks > "$RUN/native-ticks.before"
  taskset -c 0 wrk -t1 -c50 -d"${NATIVE_DUR}s" "http://127.0.0.1:$GP/" > "$RUN/native-pass.wrk.txt"
  ticks > "$RUN/native-ticks.after"
  stop "$GW"
  # the worker: the thread whose user time grew most during the run
  user=$(awk 'NR==FNR { b[$1] = $2; next } { d = $2 - b[$1]; if (d > m) m = d } END { print m + 0 }' "$RUN/native-ticks.before" "$RUN/native-ticks.after")
  reqs=$(grep -oE '^ *[0-9]+ requests in' "$RUN/native-pass.wrk.txt" | grep -oE '[0-9]+')
  echo "{\"row\":\"native-pass\",\"requests\":$reqs,\"user_ticks\":$user,\"clk_tck\":$(getconf CLK_TCK)}" >> "$RUN/counts.jsonl"
fi
echo "load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/versions.txt"
node "$HERE/summarize-instructions.js" "$RUN" | tee "$RUN/instructions.md"
echo "== wrote $RUN/instructions.md"
