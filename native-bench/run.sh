#!/usr/bin/env bash
# nanogate next to native proxies on this machine: the passthrough scenario (GET / -> origin answering 200 with a
# 100-byte body) through nginx, haproxy and nanogate, and straight to the origin.
#
#   bash native-bench/run.sh            (from the repository root; ~5 min with the defaults; root for apt-get)
#
# Pinned rows: wrk on CPU 0; the origin (nginx, 1 worker) and the proxy under test (1 worker / 1 thread) share CPU 1,
# so every proxy gets the same CPU budget. nanogate runs pinned with --workers 1, and once more with its default
# worker count and nothing pinned (a separate, clearly labelled row: not comparable with the pinned ones), and pinned
# once more with an explicit `pipelining: 64` (conf/nanogate-pipelined.yaml: no probe, larger batches; the other
# rows keep the default `pipelining: auto`).
# Each config is started fresh per round, probed (200 + 100-byte body), warmed up, then measured saturated
# (wrk -c$CONNS) and paced (each connection waits PACE_MS after a response: ~2,000 req/s with the defaults).
# Rounds interleave the configs (round 1: all, round 2: all, ...); the table shows medians.
#
# Cache-hit rows (in ONLY, not in the default set): nginx-cache-hit (proxy_cache, conf/proxy-nginx-cache.conf) and
# nanogate-1w-cache-hit (the cache policy's L1, conf/nanogate-cache.yaml); the origin sends no caching headers and
# both give its answer a 10-minute TTL, so after the probe every request is a hit. nanogate-1w-split (also in ONLY
# only): the pass-through with a 95/5 traffic split (conf/nanogate-split.yaml), to set beside nanogate-1w.
# Paced by an open loop instead (PACED_BY=even EVEN_RATE=2000): native-bench/openloop.mjs on wrk's CPU sends one
# request every 1/EVEN_RATE s over 50 connections, each timed from its scheduled send; wrk's paced connections fall
# into step and arrive in bursts of ~CONNS, so its paced P99 is the time to serve a burst, not one request.
# Knobs (env): ROUNDS=3 DUR=10 PACE_DUR=5 WARM=2 CONNS=50 PACE_MS=24 ONLY="direct nginx haproxy nanogate-1w nanogate-1w-pipelined nanogate-1w-standard nginx-2w nanogate-default"
#              NO_INSTALL=1 (do not apt-get)  NO_BUILD=1 (do not npm run build when dist/ is missing)
#              OUT_MD=native-bench/RESULTS.md  BASE_PORT=19000, 19200 with MODE=policies (origin; proxies use BASE_PORT+81.., admin +91)
# Policy cost (MODE=policies, or `nanogate bench policies`): instead of the proxies, nanogate --workers 1 pinned as
# above with each config of conf/policies/ (rows.json: pass-through, each policy alone, the standard set), saturated
# runs only, interleaved over rounds; summarize-policies.js prints each row's CPU µs/req minus its base row's, per
# round, median of rounds, next to the micro figure. ONLY takes row names (pol-pass pol-jwt ...); OUT_MD defaults
# to <run dir>/policies.md. DRY_RUN=1 lists the rows and exits.
# Raw output per run: native-bench/results/<UTC stamp>/ (git-ignored). Only 127.0.0.1 is contacted; every wrk
# run is bounded by -d; every process started here is stopped by its PID, also on failure or Ctrl-C.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
cd "$HERE"

ROUNDS=${ROUNDS:-3}; DUR=${DUR:-10}; PACE_DUR=${PACE_DUR:-5}; WARM=${WARM:-2}; CONNS=${CONNS:-50}; PACE_MS=${PACE_MS:-24}
PACED_BY=${PACED_BY:-wrk}; EVEN_RATE=${EVEN_RATE:-2000}
if [ "${MODE:-proxies}" = policies ]; then BASE_PORT=${BASE_PORT:-19200}; else BASE_PORT=${BASE_PORT:-19000}; fi  # apart, so both can run at once
ORIGIN_PORT=$BASE_PORT; NGINX_PORT=$((BASE_PORT + 81)); HAPROXY_PORT=$((BASE_PORT + 82))
NANOGATE_PORT=$((BASE_PORT + 90)); NANOGATE_ADMIN_PORT=$((BASE_PORT + 91))
GEN_CPU=0; SUT_CPU=1
MODE=${MODE:-proxies}
POL_ROWS="$HERE/conf/policies/rows.json"
pol_field() { # row field -> the row's field from rows.json ('' when absent)
  node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).rows.find((x)=>x.row===process.argv[2]);process.stdout.write(String((r&&r[process.argv[3]])||""))' "$POL_ROWS" "$1" "$2"
}
if [ "$MODE" = policies ]; then
  ALL=$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).rows.map((r)=>"pol-"+r.row).join(" "))' "$POL_ROWS")
else
  ALL="direct nginx haproxy nanogate-1w nanogate-1w-pipelined nanogate-1w-standard nginx-2w nanogate-default"
fi
CFGS=${ONLY:-$ALL}
if [ -n "${DRY_RUN:-}" ]; then
  for c in $CFGS; do
    case $c in pol-*) echo "$c conf/policies/$(pol_field "${c#pol-}" config) base=$(pol_field "${c#pol-}" base) header=$( [ -n "$(pol_field "${c#pol-}" header)" ] && echo yes || echo no)";; *) echo "$c";; esac
  done
  exit 0
fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="$HERE/results/$STAMP"; mkdir -p "$RUN"
RAW="$RUN/raw.jsonl"; : > "$RAW"
if [ "$MODE" = policies ]; then OUT_MD=${OUT_MD:-$RUN/policies.md}; else OUT_MD=${OUT_MD:-$HERE/RESULTS.md}; fi

# ---------------------------------------------------------------- install and build
if [ -z "${NO_INSTALL:-}" ]; then
  need=()
  command -v nginx   >/dev/null || need+=(nginx)
  [ "$MODE" = policies ] || command -v haproxy >/dev/null || need+=(haproxy)
  command -v wrk     >/dev/null || need+=(wrk)
  command -v curl    >/dev/null || need+=(curl)
  command -v taskset >/dev/null || need+=(util-linux)
  if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]} (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
for c in nginx wrk curl taskset node $( [ "$MODE" = policies ] || echo haproxy); do command -v "$c" >/dev/null || { echo "!! $c is missing" >&2; exit 1; }; done
if [ ! -f "$ROOT/dist/src/cli/main.js" ] && [ -z "${NO_BUILD:-}" ]; then (cd "$ROOT" && npm run build --silent) || true; fi
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "!! dist/ is missing: run npm run build" >&2; exit 1; }
if [ "$(nproc)" -lt 2 ]; then echo "!! needs at least 2 CPUs (wrk on CPU 0, origin + proxy on CPU 1)" >&2; exit 1; fi

# ---------------------------------------------------------------- processes (PID based only)
PIDS=()
start_bg() { # name cpu(-1 = unpinned) cmd...
  local name=$1 cpu=$2; shift 2
  if [ "$cpu" = "-1" ]; then "$@" >>"$RUN/$name.log" 2>&1 &
  else taskset -c "$cpu" "$@" >>"$RUN/$name.log" 2>&1 & fi
  LASTPID=$!; PIDS+=("$LASTPID")
}
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1; [ -n "$st" ] && [ "${st:0:1}" != Z ]; }
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
}
stop_all() { local p; for p in "${PIDS[@]:-}"; do [ -n "$p" ] && stop_pid "$p"; done; PIDS=(); }
trap 'stop_all' EXIT
trap 'echo "!! interrupted" >&2; exit 130' INT TERM
wait_http() { # url [header] -> 0 when it answers 200 with the 100-byte body
  local i h=(); [ -n "${2:-}" ] && h=(-H "$2")
  for i in $(seq 1 150); do
    if [ "$(curl -s "${h[@]}" -o "$RUN/probe.body" -w '%{http_code}' --max-time 2 "$1" 2>/dev/null)" = 200 ] \
       && [ "$(wc -c < "$RUN/probe.body")" = 100 ]; then return 0; fi
    sleep 0.1
  done
  echo "!! $1 did not answer 200 with a 100-byte body" >&2; return 1
}
cpu_ticks() { # utime+stime (clock ticks) of pid, all its threads, and its direct children (nginx workers)
  local pid=$1 t=0 c
  for c in $pid $(ps -o pid= --ppid "$pid" 2>/dev/null); do
    [ -r /proc/"$c"/stat ] && t=$(( t + $(awk '{sub(/^.*\) /,""); print $12+$13}' /proc/"$c"/stat) ))
  done
  echo $t
}
cpu_idle_total() { # idle+iowait and all ticks of the whole machine (/proc/stat), for the idle share of a run
  awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit}' /proc/stat
}
tmpl() {
  sed -e "s#__RUN__#$RUN#g" -e "s#__ORIGIN_PORT__#$ORIGIN_PORT#g" -e "s#__NGINX_PORT__#$NGINX_PORT#g" \
      -e "s#__HAPROXY_PORT__#$HAPROXY_PORT#g" "$1" > "$RUN/$(basename "$1")"
  echo "$RUN/$(basename "$1")"
}
ORIGIN_CONF=$(tmpl conf/origin-nginx.conf)
NGINX_CONF=$(tmpl conf/proxy-nginx.conf)
NGINX_CACHE_CONF=$(tmpl conf/proxy-nginx-cache.conf)
HAPROXY_CONF=$( [ "$MODE" = policies ] || tmpl conf/haproxy.cfg)

port_of() { case $1 in direct) echo "$ORIGIN_PORT";; nginx|nginx-2w|nginx-cache-hit) echo "$NGINX_PORT";; haproxy) echo "$HAPROXY_PORT";; nanogate-*|pol-*) echo "$NANOGATE_PORT";; esac; }
pinned_of() { case $1 in nanogate-default|nginx-2w) echo 0;; *) echo 1;; esac; }

start_proxy() { # cfg cpu -> LASTPID (empty for direct)
  local cfg=$1 cpu=$2
  LASTPID=
  case $cfg in
    direct) ;;
    nginx)   start_bg "$cfg" "$cpu" nginx -c "$NGINX_CONF" -p "$RUN" -g "daemon off; worker_processes 1;" ;;
    nginx-2w) start_bg "$cfg" "$cpu" nginx -c "$NGINX_CONF" -p "$RUN" -g "daemon off; worker_processes 2;" ;;
    nginx-cache-hit) start_bg "$cfg" "$cpu" nginx -c "$NGINX_CACHE_CONF" -p "$RUN" -g "daemon off; worker_processes 1;" ;;
    nanogate-1w-cache-hit)
      NB_NANOGATE_PORT=$NANOGATE_PORT NB_NANOGATE_ADMIN_PORT=$NANOGATE_ADMIN_PORT NB_ORIGIN_PORT=$ORIGIN_PORT \
        start_bg "$cfg" "$cpu" node --no-memory-reducer "$ROOT/bin/nanogate.js" start --config "$HERE/conf/nanogate-cache.yaml" --workers 1 ;;
    haproxy) start_bg "$cfg" "$cpu" haproxy -db -f "$HAPROXY_CONF" ;;
    nanogate-1w)
      NB_NANOGATE_PORT=$NANOGATE_PORT NB_NANOGATE_ADMIN_PORT=$NANOGATE_ADMIN_PORT NB_ORIGIN_PORT=$ORIGIN_PORT \
        start_bg "$cfg" "$cpu" node --no-memory-reducer "$ROOT/bin/nanogate.js" start --config "$HERE/conf/nanogate.yaml" --workers 1 ;;
    nanogate-1w-split)
      NB_NANOGATE_PORT=$NANOGATE_PORT NB_NANOGATE_ADMIN_PORT=$NANOGATE_ADMIN_PORT NB_ORIGIN_PORT=$ORIGIN_PORT \
        start_bg "$cfg" "$cpu" node --no-memory-reducer "$ROOT/bin/nanogate.js" start --config "$HERE/conf/nanogate-split.yaml" --workers 1 ;;
    nanogate-1w-pipelined)
      NB_NANOGATE_PORT=$NANOGATE_PORT NB_NANOGATE_ADMIN_PORT=$NANOGATE_ADMIN_PORT NB_ORIGIN_PORT=$ORIGIN_PORT \
        start_bg "$cfg" "$cpu" node --no-memory-reducer "$ROOT/bin/nanogate.js" start --config "$HERE/conf/nanogate-pipelined.yaml" --workers 1 ;;
    nanogate-1w-standard)
      NB_NANOGATE_PORT=$NANOGATE_PORT NB_NANOGATE_ADMIN_PORT=$NANOGATE_ADMIN_PORT NB_ORIGIN_PORT=$ORIGIN_PORT \
      NB_ACCESS_LOG="$RUN/access-$cfg.log" \
        start_bg "$cfg" "$cpu" node --no-memory-reducer "$ROOT/bin/nanogate.js" start --config "$HERE/conf/policies/standard.yaml" --workers 1 ;;
    pol-*)
      NB_NANOGATE_PORT=$NANOGATE_PORT NB_NANOGATE_ADMIN_PORT=$NANOGATE_ADMIN_PORT NB_ORIGIN_PORT=$ORIGIN_PORT \
      NB_ACCESS_LOG="$RUN/access-$cfg.log" \
        start_bg "$cfg" "$cpu" node --no-memory-reducer "$ROOT/bin/nanogate.js" start --config "$HERE/conf/policies/$(pol_field "${cfg#pol-}" config)" --workers 1 ;;
    nanogate-default)
      NB_NANOGATE_PORT=$NANOGATE_PORT NB_NANOGATE_ADMIN_PORT=$NANOGATE_ADMIN_PORT NB_ORIGIN_PORT=$ORIGIN_PORT \
        start_bg "$cfg" "$cpu" node --no-memory-reducer "$ROOT/bin/nanogate.js" start --config "$HERE/conf/nanogate.yaml" ;;
  esac
}

header_of() { case $1 in pol-*) pol_field "${1#pol-}" header;; nanogate-1w-standard) pol_field standard header;; esac; }
wrk_run() { # cfg round mode(sat|paced) gen_cpu url sut_pid origin_pid
  local cfg=$1 round=$2 mode=$3 gcpu=$4 url=$5 spid=$6 opid=$7 out j s0 s1 o0 o1 dur hdr
  local h=(); hdr=$(header_of "$cfg"); [ -n "$hdr" ] && h=(-H "$hdr")
  out="$RUN/$cfg.r$round.$mode.txt"
  s0=$( [ -n "$spid" ] && cpu_ticks "$spid" || echo 0 ); o0=$(cpu_ticks "$opid")
  local i0 t0 i1 t1 gen TIMEFORMAT='%U %S'
  read -r i0 t0 < <(cpu_idle_total)
  local pre=(); [ "$gcpu" != "-1" ] && pre=(taskset -c "$gcpu")
  if [ "$mode" = paced ]; then dur=$PACE_DUR; else dur=$DUR; fi
  # bash's `time` gives the generator's own CPU (user + system seconds) in $RUN/gen.time
  { time {
    if [ "$mode" = paced ] && [ "$PACED_BY" = even ]; then
      local port=${url#http://127.0.0.1:}; port=${port%/}
      "${pre[@]}" node openloop.mjs "$ROOT" "$port" "$EVEN_RATE" "$dur" "$hdr" > "$out" 2>&1 || true
    elif [ "$mode" = paced ]; then
      PACE_MS=$PACE_MS "${pre[@]}" wrk -t1 -c"$CONNS" -d"${dur}s" "${h[@]}" --latency -s report.lua "$url" > "$out" 2>&1 || true
    else
      "${pre[@]}" wrk -t1 -c"$CONNS" -d"${dur}s" "${h[@]}" --latency -s report.lua "$url" > "$out" 2>&1 || true
    fi
  } ; } 2> "$RUN/gen.time"
  read -r i1 t1 < <(cpu_idle_total)
  gen=$(awk '{printf "%.3f", $1 + $2}' "$RUN/gen.time" 2>/dev/null || echo 0)
  s1=$( [ -n "$spid" ] && cpu_ticks "$spid" || echo 0 ); o1=$(cpu_ticks "$opid")
  if [ -n "$spid" ] && ! alive "$spid"; then echo "!! $cfg r$round $mode: the proxy exited during the run (see $RUN/$cfg.log); not recorded" >&2; return 0; fi
  j=$(grep '^JSON ' "$out" | sed 's/^JSON //' || true)
  [ -n "$j" ] || { echo "!! no wrk result in $out" >&2; return 0; }
  echo "${j%\}},\"cfg\":\"$cfg\",\"round\":$round,\"mode\":\"$mode\",\"pinned\":$(pinned_of "$cfg"),\"sut_cpu_ticks\":$((s1-s0)),\"origin_cpu_ticks\":$((o1-o0)),\"gen_cpu_s\":${gen:-0},\"idle_pct\":$(( t1 > t0 ? (i1 - i0) * 100 / (t1 - t0) : 0 )),\"clk_tck\":$(getconf CLK_TCK)}" >> "$RAW"
  printf '  r%s %-17s %-5s %s\n' "$round" "$cfg" "$mode" "$j"
}

run_cfg() { # cfg round
  local cfg=$1 round=$2 scpu gcpu opid spid url
  if [ "$(pinned_of "$cfg")" = 1 ]; then scpu=$SUT_CPU; gcpu=$GEN_CPU; else scpu=-1; gcpu=-1; fi
  start_bg "origin-$cfg" "$scpu" nginx -c "$ORIGIN_CONF" -p "$RUN" -g "daemon off; worker_processes 1;"; opid=$LASTPID
  if ! wait_http "http://127.0.0.1:$ORIGIN_PORT/"; then stop_all; return 0; fi
  start_proxy "$cfg" "$scpu"; spid=$LASTPID
  url="http://127.0.0.1:$(port_of "$cfg")/"
  local hdr h=(); hdr=$(header_of "$cfg"); [ -n "$hdr" ] && h=(-H "$hdr")
  if wait_http "$url" "$hdr"; then
    local pre=(); [ "$gcpu" != "-1" ] && pre=(taskset -c "$gcpu")
    "${pre[@]}" wrk -t1 -c"$CONNS" -d"${WARM}s" "${h[@]}" "$url" > "$RUN/$cfg.r$round.warmup.txt" 2>&1 || true   # JIT, pools
    wrk_run "$cfg" "$round" sat   "$gcpu" "$url" "$spid" "$opid"
    [ "$MODE" = policies ] || wrk_run "$cfg" "$round" paced "$gcpu" "$url" "$spid" "$opid"
  fi
  stop_all
  [ -f "$RUN/access-$cfg.log" ] && { grep -c . "$RUN/access-$cfg.log" > "$RUN/access-$cfg.r$round.lines" || true; rm -f "$RUN/access-$cfg.log"; }
  sleep 1
}

# ---------------------------------------------------------------- versions
{
  echo "date_utc=$(date -u '+%Y-%m-%d %H:%M:%SZ')"
  echo "host=$(hostname)"
  echo "kernel=$(uname -r)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
  echo "memory=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "node=$(node -v)"
  echo "nanogate=$(node -p "require('$ROOT/package.json').version") ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo "nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///')"
  echo "haproxy=$(haproxy -v 2>/dev/null | head -1 | awk '{print $3}')"
  echo "wrk=$(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo '?')"
} > "$RUN/versions.txt"
cat "$RUN/versions.txt"

echo "mode=$MODE" >> "$RUN/versions.txt"
echo "paced_by=$PACED_BY$( [ "$PACED_BY" = even ] && echo " $EVEN_RATE/s" )" >> "$RUN/versions.txt"
echo "== $ROUNDS rounds of: $CFGS  (wrk -t1 -c$CONNS; saturated ${DUR}s$( [ "$MODE" = policies ] || echo ", paced ${PACE_DUR}s at PACE_MS=$PACE_MS"); warm-up ${WARM}s)"
for r in $(seq 1 "$ROUNDS"); do
  for c in $CFGS; do run_cfg "$c" "$r"; done
done
echo "load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/versions.txt"

if [ "$MODE" = policies ]; then node "$HERE/summarize-policies.js" "$RUN" > "$OUT_MD"
else node "$HERE/summarize.js" "$RUN" > "$OUT_MD"; fi
echo
cat "$OUT_MD"
echo "== wrote $OUT_MD (raw: $RUN)"
