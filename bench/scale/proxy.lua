-- wrk script: send every request to the proxy under test in absolute form, as a browser
-- configured with a proxy does. BENCH_URL is the target, BENCH_HOST its Host header, and
-- BENCH_CLOSE=1 asks for a new connection per request (Connection: close).
local url = os.getenv("BENCH_URL")
local host = os.getenv("BENCH_HOST")
local close = os.getenv("BENCH_CLOSE") == "1"

request = function()
  local headers = { ["Host"] = host }
  if close then
    headers["Connection"] = "close"
  end
  return wrk.format("GET", url, headers)
end
