-- Load for bench/memory.sh: per 10 requests 5 whoami and 5 certificate.edit of a random
-- service, each as a random one of the first ACTIVE resellers (r1..rACTIVE, password
-- bench-pw). Service elid 1000000 + i belongs to reseller r(i mod RESELLERS + 1); STEP
-- services each. Arguments: ACTIVE RESELLERS STEP.
local active, resellers, step = 1000, 10000, 100
function init(args)
  active, resellers, step = tonumber(args[1]), tonumber(args[2]), tonumber(args[3])
  math.randomseed(os.time())
end
local i = 0
function request()
  i = i + 1
  local r = math.random(1, active)
  local ai = "authinfo=r" .. r .. ":bench-pw"
  if i % 2 == 0 then
    return wrk.format("GET", "/billmgr?func=whoami&" .. ai)
  end
  local elid = 1000000 + (r - 1) + resellers * math.random(0, step - 1)
  return wrk.format("GET", "/billmgr?func=certificate.edit&out=json&elid=" .. elid .. "&" .. ai)
end
