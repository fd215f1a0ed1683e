-- wrk script for bench/run.py: sends the viewer's token or session cookie and prints the figures as one JSON line.
local authorization = os.getenv("BENCH_AUTHORIZATION") or ""
local cookie = os.getenv("BENCH_COOKIE") or ""
if authorization ~= "" then
  -- No Accept header: the report's ?format= chooses JSON, CSV or Excel (an Accept of JSON would refuse the others).
  wrk.headers["Authorization"] = authorization
end
if cookie ~= "" then
  wrk.headers["Cookie"] = cookie
  wrk.headers["Accept"] = "text/html"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors_status": %d, "errors_connect": %d, ' ..
    '"errors_read": %d, "errors_write": %d, "errors_timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
end
