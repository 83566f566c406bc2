-- wrk script: prints one JSON line with precise percentiles (microseconds, wrk's own µs histogram) at the end.
-- If PACE_MS is set, each connection waits PACE_MS ms after a response before its next request (wrk's delay()
-- hook): a paced, roughly fixed-rate load; wrk's latency clock starts at the send, so the wait is excluded.
local pace = tonumber(os.getenv("PACE_MS") or "")
if pace then
  function delay() return pace end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"rps":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
