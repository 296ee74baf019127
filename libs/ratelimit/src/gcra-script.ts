/**
 * `gcraStep` (gcra.ts) for several counters in one atomic Redis call: the
 * same arithmetic, the same all-or-nothing charging as MemoryCounterStore.
 *
 * KEYS: one per counter.
 * ARGV[1]: now in microseconds, or "" to use the Redis server's clock (so
 *          replicas with different clocks agree).
 * ARGV[2..]: per counter, three values: period_us, requests, enforce (1/0);
 *            then per counter its retention in milliseconds (PX).
 * Returns per counter four integers: allowed (1/0), remaining, reset_ms,
 * retry_after_ms.
 *
 * TATs are stored with 17 significant digits so a stored double reads back
 * exactly and the memory store (which keeps the double) gives the same answers.
 */
export const GCRA_SCRIPT = `
local n = #KEYS
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local epsilon = 0.001
local out = {}
local writes = {}
local rejected = false
for i = 1, n do
  local base = 2 + (i - 1) * 3
  local period = tonumber(ARGV[base])
  local requests = tonumber(ARGV[base + 1])
  local enforce = ARGV[base + 2] == '1'
  local interval = period / requests
  local stored = redis.call('GET', KEYS[i])
  local tat = now
  if stored then
    tat = tonumber(stored)
    if tat < now then tat = now end
  end
  local new_tat = tat + interval
  local ahead = new_tat - now
  if ahead <= period + epsilon then
    out[#out + 1] = 1
    out[#out + 1] = math.floor((period - ahead) / interval + 1e-9)
    out[#out + 1] = math.ceil(ahead / 1000)
    out[#out + 1] = 0
    writes[i] = new_tat
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = math.ceil((tat - now) / 1000)
    out[#out + 1] = math.ceil((ahead - period) / 1000)
    if enforce then rejected = true end
  end
end
if not rejected then
  local retention = 2 + n * 3
  for i = 1, n do
    if writes[i] then
      redis.call('SET', KEYS[i], string.format('%.17g', writes[i]), 'PX', ARGV[retention + i - 1])
    end
  end
end
return out
`;
