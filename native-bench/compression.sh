#!/usr/bin/env bash
# Compression cost: nanogate's compression policy (gzip 6, brotli 4 and 5) next to nginx's gzip at level 6, on a
# ~20 KB JSON body, and the policy's cost on responses it does not compress (too small, not a listed type).
#
#   bash native-bench/compression.sh        (from the repository root; ~4 min with the defaults; needs nginx and wrk)
#
# Pinned as in run.sh: wrk on CPU 0, the origin (nginx, 1 worker, static files) and the proxy under test (nginx 1
# worker, or nanogate --workers 1 with its libuv pool threads) on CPU 1. Each row is started fresh, probed, warmed up,
# measured saturated, and the proxy's CPU time (utime+stime of all its threads, /proc) is divided by the requests
# served: CPU µs per request, and body MB per CPU-second (the "MB/s per core" of compressing through that proxy).
# Rows interleave over rounds; the table shows medians of rounds.
#
# Knobs (env): ROUNDS=2 DUR=8 WARM=2 CONNS=16 ONLY="row ..." BASE_PORT=19400
# Raw output: native-bench/results/compression-<UTC stamp>/ (git-ignored). Only 127.0.0.1 is contacted; every process
# started here is stopped by its PID, also on failure or Ctrl-C.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
cd "$HERE"

ROUNDS=${ROUNDS:-2}; DUR=${DUR:-8}; WARM=${WARM:-2}; CONNS=${CONNS:-16}; BASE_PORT=${BASE_PORT:-19400}
ORIGIN_PORT=$BASE_PORT; NGINX_PORT=$((BASE_PORT + 81)); NANOGATE_PORT=$((BASE_PORT + 90)); NANOGATE_ADMIN_PORT=$((BASE_PORT + 91))
GEN_CPU=0; SUT_CPU=1
for c in nginx wrk curl taskset node; do command -v "$c" >/dev/null || { echo "!! $c is missing" >&2; exit 1; }; done
[ -f "$ROOT/dist/src/cli/main.js" ] || { echo "!! dist/ is missing: run npm run build" >&2; exit 1; }
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN="$HERE/results/compression-$STAMP"; mkdir -p "$RUN/www"
RAW="$RUN/raw.jsonl"; : > "$RAW"

# rows: name proxy path accept-encoding
ROWS=(
  "nginx-identity nginx /api.json identity"
  "nginx-gzip6 nginx-gzip /api.json gzip"
  "ng-identity nanogate /off/api.json gzip"
  "ng-gzip6 nanogate /gz/api.json gzip"
  "ng-br4 nanogate /br4/api.json br"
  "ng-br5 nanogate /br5/api.json br"
  "ng-small-off nanogate /off/small.json gzip"
  "ng-small-on nanogate /gz/small.json gzip"
  "ng-png-off nanogate /off/img.png gzip"
  "ng-png-on nanogate /gz/img.png gzip"
)
SELECTED=${ONLY:-$(for r in "${ROWS[@]}"; do printf "%s " "${r%% *}"; done)}

# the bodies: ~20 KB of JSON like API output, a 300-byte one, and 20 KB of an image type
node -e '
const fs = require("fs"); const dir = process.argv[1];
const json = (size) => { const items = []; let n = 2; for (let i = 0; n < size; i++) { const s = JSON.stringify({ id: i, name: `item-${i}`, price: (i * 37) % 1000, tags: ["a", "b", String(i % 7)], updated: new Date(1.7e12 + i * 9e5).toISOString() }); items.push(s); n += s.length + 1; } return `[${items.join(",")}]`; };
fs.writeFileSync(dir + "/api.json", json(20000)); fs.writeFileSync(dir + "/small.json", json(300));
fs.writeFileSync(dir + "/img.png", require("crypto").randomBytes(20000));
' "$RUN/www"
BODY_BYTES=$(wc -c < "$RUN/www/api.json")

PIDS=()
start_bg() { local name=$1 cpu=$2; shift 2; taskset -c "$cpu" "$@" >>"$RUN/$name.log" 2>&1 & LASTPID=$!; PIDS+=("$LASTPID"); }
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
cpu_ticks() {
  local pid=$1 t=0 c
  for c in $pid $(ps -o pid= --ppid "$pid" 2>/dev/null); do
    [ -r /proc/"$c"/stat ] && t=$(( t + $(awk '{sub(/^.*\) /,""); print $12+$13}' /proc/"$c"/stat) ))
  done
  echo $t
}
wait_200() { local i; for i in $(seq 1 150); do [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "accept-encoding: $2" "$1")" = 200 ] && return 0; sleep 0.1; done; echo "!! $1 did not answer" >&2; return 1; }

cat > "$RUN/origin.conf" <<EOF
pid $RUN/origin.pid; error_log $RUN/origin.error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_timeout 120s; keepalive_requests 100000000;
  types { application/json json; image/png png; }
  client_body_temp_path $RUN/o_body; proxy_temp_path $RUN/o_proxy; fastcgi_temp_path $RUN/o_fcgi; uwsgi_temp_path $RUN/o_uwsgi; scgi_temp_path $RUN/o_scgi;
  open_file_cache max=16;
  server { listen 127.0.0.1:$ORIGIN_PORT backlog=4096; root $RUN/www; etag on; }
}
EOF
proxy_conf() { # gzip on|off
  cat > "$RUN/proxy-$1.conf" <<EOF
pid $RUN/proxy.pid; error_log $RUN/proxy.error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_timeout 120s; keepalive_requests 100000000;
  client_body_temp_path $RUN/p_body; proxy_temp_path $RUN/p_proxy; fastcgi_temp_path $RUN/p_fcgi; uwsgi_temp_path $RUN/p_uwsgi; scgi_temp_path $RUN/p_scgi;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; keepalive_requests 100000000; }
  gzip $1; gzip_comp_level 6; gzip_types application/json; gzip_min_length 1024; gzip_proxied any; gzip_vary on;
  # nginx's own defaults are windowBits 15 and memLevel 8 (ngx_http_gzip_filter_module.c), as nanogate's
  server { listen 127.0.0.1:$NGINX_PORT backlog=4096; location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
EOF
}
proxy_conf on; proxy_conf off
cat > "$RUN/nanogate.yaml" <<EOF
listen: { host: 127.0.0.1, port: $NANOGATE_PORT }
admin: { host: 127.0.0.1, port: $NANOGATE_ADMIN_PORT }
upstreams:
  origin: { nodes: [{ url: "http://127.0.0.1:$ORIGIN_PORT" }] }
routes:
  - { name: off, match: { prefix: /off }, upstream: origin, stripPrefix: true }
  - { name: gz, match: { prefix: /gz }, upstream: origin, stripPrefix: true, policies: { compression: { encodings: [gzip], gzip: { level: 6 } } } }
  - { name: br4, match: { prefix: /br4 }, upstream: origin, stripPrefix: true, policies: { compression: { encodings: [br], brotli: { quality: 4 } } } }
  - { name: br5, match: { prefix: /br5 }, upstream: origin, stripPrefix: true, policies: { compression: { encodings: [br], brotli: { quality: 5 } } } }
EOF

{
  echo "date_utc=$(date -u '+%Y-%m-%d %H:%M:%SZ')"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
  echo "load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "node=$(node -v) nginx=$(nginx -v 2>&1 | sed 's/.*nginx\///') body_bytes=$BODY_BYTES"
  echo "nanogate=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
} | tee "$RUN/versions.txt"

run_row() { # name proxy path ae round
  local name=$1 proxy=$2 path=$3 ae=$4 round=$5 opid spid url s0 s1 out
  start_bg "origin-$name" "$SUT_CPU" nginx -c "$RUN/origin.conf" -p "$RUN" -g "daemon off; worker_processes 1;"; opid=$LASTPID
  wait_200 "http://127.0.0.1:$ORIGIN_PORT/api.json" identity || { stop_all; return 0; }
  case $proxy in
    nginx) start_bg "$name" "$SUT_CPU" nginx -c "$RUN/proxy-off.conf" -p "$RUN" -g "daemon off; worker_processes 1;"; url="http://127.0.0.1:$NGINX_PORT$path" ;;
    nginx-gzip) start_bg "$name" "$SUT_CPU" nginx -c "$RUN/proxy-on.conf" -p "$RUN" -g "daemon off; worker_processes 1;"; url="http://127.0.0.1:$NGINX_PORT$path" ;;
    nanogate) start_bg "$name" "$SUT_CPU" node --no-memory-reducer "$ROOT/bin/nanogate.js" start --config "$RUN/nanogate.yaml" --workers 1; url="http://127.0.0.1:$NANOGATE_PORT$path" ;;
  esac
  spid=$LASTPID
  if wait_200 "$url" "$ae"; then
    curl -s -D "$RUN/$name.headers" -o "$RUN/$name.body" -H "accept-encoding: $ae" "$url" || true
    taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -d"${WARM}s" -H "accept-encoding: $ae" "$url" > /dev/null 2>&1 || true
    s0=$(cpu_ticks "$spid")
    out=$(taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" -H "accept-encoding: $ae" "$url" 2>&1 || true)
    s1=$(cpu_ticks "$spid")
    local reqs wire
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    wire=$(wc -c < "$RUN/$name.body")
    echo "{\"row\":\"$name\",\"round\":$round,\"requests\":${reqs:-0},\"cpu_ticks\":$((s1 - s0)),\"clk_tck\":$(getconf CLK_TCK),\"dur\":$DUR,\"wire_bytes\":$wire,\"ce\":\"$(grep -i '^content-encoding' "$RUN/$name.headers" | tr -d '\r' | cut -d' ' -f2)\"}" | tee -a "$RAW"
  fi
  stop_all
  sleep 1
}

for round in $(seq 1 "$ROUNDS"); do
  for r in "${ROWS[@]}"; do
    read -r name proxy path ae <<< "$r"
    echo " $SELECTED " | grep -q " $name " || continue
    run_row "$name" "$proxy" "$path" "$ae" "$round"
  done
done
echo "load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RUN/versions.txt"

node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const body = Number(process.argv[2]);
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const by = new Map(); for (const r of rows) { if (!by.has(r.row)) by.set(r.row, []); by.get(r.row).push(r); }
console.log("| row | encoding | bytes on the wire | req/s | proxy CPU µs/req | body MB per CPU-s |");
console.log("|---|---|---|---|---|---|");
for (const [row, rs] of by) {
  const us = med(rs.map((r) => (r.cpu_ticks / r.clk_tck) * 1e6 / Math.max(1, r.requests)));
  const rps = med(rs.map((r) => r.requests / r.dur));
  const size = row.includes("small") ? null : row.includes("png") ? null : body;
  console.log(`| ${row} | ${rs[0].ce || "identity"} | ${rs[0].wire_bytes} | ${rps.toFixed(0)} | ${us.toFixed(1)} | ${size ? (size / us).toFixed(1) : "-"} |`);
}
' "$RAW" "$BODY_BYTES" | tee "$RUN/summary.md"
