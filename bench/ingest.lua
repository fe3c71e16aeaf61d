-- wrk script for bench/ingest.sh: a signed GitHub push with a unique X-GitHub-Delivery per request, so every
-- request must be stored (none is deduplicated). Counts 202s per thread so the script can check the store.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
  body = f:read("*a")
  f:close()
  sig = os.getenv("BENCH_SIG")
  run = os.getenv("BENCH_RUN")
  counter = 0
  accepted = 0
  other = 0
end

function request()
  counter = counter + 1
  return wrk.format("POST", os.getenv("BENCH_PATH"), {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = run .. "-" .. id .. "-" .. counter,
    ["X-Hub-Signature-256"] = sig,
  }, body)
end

function response(status, headers, body)
  if status == 202 or status == 200 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    o = o + t:get("other")
  end
  io.write(string.format("BENCH_2XX %d\nBENCH_OTHER %d\n", a, o))
  io.write(string.format("BENCH_P50_MS %.3f\nBENCH_P99_MS %.3f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("BENCH_RPS %.1f\n", summary.requests / (summary.duration / 1e6)))
end
