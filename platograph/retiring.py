"""Retiring consumer-group members that are gone: a member named after a pod or a process (a new name at
each deploy) stays in its group for ever otherwise, and with it a line in every `XINFO CONSUMERS`.

A member idle for longer than the limit with nothing pending is deleted (`XGROUP DELCONSUMER`). One that
still has pending entries stays until a live member has claimed them (the consuming loop reclaims entries
idle past `PLATOGRAPH_CLAIM_IDLE_MS`): deleting it would drop them from the group's pending list, so
nobody would ever be given them again. The check and the deletion run in one script, so a member that
wakes up and reads between the two cannot lose what it read.
"""

from __future__ import annotations

import redis

from platograph.stream import reply_text

# KEYS[1] stream; ARGV: group, the caller's own name (never retired), idle limit in ms.
RETIRE = """
local gone = {}
for _, member in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #member, 2 do f[member[i]] = member[i + 1] end
  if f['name'] ~= ARGV[2] and tonumber(f['pending']) == 0 and tonumber(f['idle']) > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    gone[#gone + 1] = f['name']
  end
end
return gone
"""


def retire_idle(client: redis.Redis, stream: str, group: str, *, keep: str, idle_ms: int) -> list[str]:
    """Delete the group's members idle for over `idle_ms` with nothing pending (never `keep`); their names."""
    return [reply_text(name) for name in client.eval(RETIRE, 1, stream, group, keep, idle_ms)]
