"""The Lua scripts cluster mode runs in Redis. Pure: text only.

Why scripts: each one is a read-check-write that must be atomic — taking a lease only if it
is free, renewing it only if it is still ours, publishing only while we hold it. A script
runs alone in Redis (nothing interleaves), which MULTI/EXEC cannot give for a check whose
outcome decides the writes. Keys are passed in ``KEYS`` except one: the previous run's
stream, whose name is only known inside the script (same hash tag, so the same slot).

Replies are small arrays ``{code, value}`` (Lua ``false`` → nil); a value we did not write
at one of our keys is an error reply starting ``TRIO_SSE`` (→ ``ClusterDataError``).
"""

from __future__ import annotations

# A token is "<epoch>:<owner>" (keys.Token).
_TOKEN_PATTERN = "^%d+:[%w_%.%-]+$"

# KEYS: lease, epoch. ARGV: owner, lease ms.
# → {1, token}: ours now (or already: a retried call whose reply was lost keeps its lease);
#   {0, pttl}: another owner holds it for pttl more ms.
ACQUIRE = f"""
local cur = redis.call('GET', KEYS[1])
if cur then
  if not string.match(cur, '{_TOKEN_PATTERN}') then
    return redis.error_reply('TRIO_SSE foreign value at ' .. KEYS[1])
  end
  local owner = string.sub(cur, string.find(cur, ':', 1, true) + 1)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {{1, cur}}
  end
  return {{0, redis.call('PTTL', KEYS[1])}}
end
local epoch = redis.call('INCR', KEYS[2])
local token = epoch .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return {{1, token}}
"""

# KEYS: lease, epoch. ARGV: token, lease ms, the token's epoch.
# → {1}: renewed; {2}: the key was gone and nobody took the target since (the epoch counter
#   is still ours, or Redis lost it with everything else): taken back with the same token —
#   the publisher must republish, Redis may have lost our data; {0}: another owner has it
#   (or had it: the epoch moved on) — we are no longer the leader.
RENEW = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1}
end
if cur then
  return {0}
end
local epoch = redis.call('GET', KEYS[2])
if epoch == false or epoch == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if epoch == false then
    redis.call('SET', KEYS[2], ARGV[3])
  end
  return {2}
end
return {0}
"""

# KEYS: lease. ARGV: token. → {1} released, {0} not ours (nothing done).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {1}
end
return {0}
"""

# One publish step of the leader, all or nothing.
# KEYS: lease, meta, live, events:<run>.
# ARGV: 1 token, 2 run ("" = not named yet: no switch, no entries), 3 events key prefix,
#       4 retention ms, 5 live maxlen, 6 "1" to write state, 7 status, 8 progress,
#       9 outage ("" = none), 10 stats, 11 checkpoint count ("" = none; written only when Redis
#       holds at least that many entries of the run after the step), 12 checkpoint JSON,
#       13 error count E (or "E,S": E errors then S step events), 14 .. 13+E error data,
#       14+E .. 13+E+S step data, then entries as (n, id, event, data, lane).
# → {code, published, run}: ``run`` is the run Redis holds events of after the step ("" none),
#   ``published`` the last ordinal it holds of it.
#   {0, 0, ''}: fenced (another token holds the lease: nothing written);
#   {3, 0, ''}: nobody holds it (it lapsed, or Redis lost it): nothing written — renew (which
#   takes it back if nobody led since) and publish again;
#   {2, published, run}: the entries do not follow on from what Redis has (it lost data, or the
#   publisher skipped some): nothing written, resend from published + 1;
#   {1, published, run}: written; entries with n <= published were there already and are not
#   added again (a retry, a new leader re-deriving them): never a duplicate in the stream.
PUBLISH = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  return {3, 0, ''}
end
if holder ~= ARGV[1] then
  return {0, 0, ''}
end
local run = ARGV[2]
local meta_run = redis.call('HGET', KEYS[2], 'run')
local switch = run ~= '' and meta_run ~= run
local published = 0
if not switch then
  published = tonumber(redis.call('HGET', KEYS[2], 'published') or '0')
  if published == nil then
    return redis.error_reply('TRIO_SSE foreign value at ' .. KEYS[2] .. ' field published')
  end
end
local errors, steps = string.match(ARGV[13], '^(%d+),?(%d*)$')
errors = tonumber(errors)
steps = tonumber(steps) or 0
local first = 14 + errors + steps
local next_n = published + 1
for i = first, #ARGV, 5 do
  local n = tonumber(ARGV[i])
  if n > next_n then
    return {2, published, run}
  elseif n == next_n then
    next_n = n + 1
  end
end
if switch then
  if meta_run then
    redis.call('PEXPIRE', ARGV[3] .. meta_run, ARGV[4])
  end
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[2], 'run', run, 'published', 0)
  redis.call('HDEL', KEYS[2], 'checkpoint')
end
for i = first, #ARGV, 5 do
  local n = tonumber(ARGV[i])
  if n == published + 1 then
    redis.call('XADD', KEYS[4], '*', 'n', ARGV[i], 'id', ARGV[i + 1], 'event', ARGV[i + 2], 'data', ARGV[i + 3],
      'lane', ARGV[i + 4])
    published = n
  end
end
redis.call('HSET', KEYS[2], 'published', published)
if run ~= '' and ARGV[11] ~= '' and tonumber(ARGV[11]) <= published then
  redis.call('HSET', KEYS[2], 'checkpoint', ARGV[12])
end
for i = 14, 13 + errors do
  redis.call('XADD', KEYS[3], 'MAXLEN', '=', ARGV[5], '*', 'kind', 'error', 'data', ARGV[i])
end
for i = 14 + errors, first - 1 do
  redis.call('XADD', KEYS[3], 'MAXLEN', '=', ARGV[5], '*', 'kind', 'step', 'data', ARGV[i])
end
if ARGV[6] == '1' then
  local live_run = redis.call('HGET', KEYS[2], 'run') or ''
  redis.call('XADD', KEYS[3], 'MAXLEN', '=', ARGV[5], '*', 'kind', 'state', 'run', live_run,
    'status', ARGV[7], 'progress', ARGV[8], 'outage', ARGV[9], 'stats', ARGV[10])
end
return {1, published, redis.call('HGET', KEYS[2], 'run') or ''}
"""
