-- Mixed load for bench/soak.sh: a weighted rotation of reseller calls. Counts answers
-- that are errors of type "upstream" (the gateway could not serve) and prints
-- "soak-bad N" at the end.
local ai = "authinfo=acme:acme-demo-pw"
local order = "func=certificate.order.param&sok=ok&skipbasket=on&pricelist=101&period=12" ..
  "&adm_fname=A&adm_lname=B&adm_email=a%40example.com&adm_phone=1&like_admin=on"
local mix = {}
local function add(n, f) for _ = 1, n do mix[#mix + 1] = f end end
add(40, function() return "/billmgr?func=whoami&" .. ai end)
add(25, function() return "/billmgr?func=certificate&out=json&" .. ai end)
add(15, function() return "/billmgr?func=pricelist.export&out=sjson&" .. ai end)
add(10, function() return "/billmgr?func=auth&username=acme&password=acme-demo-pw" end)
add(5, function() return "/billmgr?func=user.edit&" .. ai end)
add(4, function() return "/billmgr?func=whoami&authinfo=nobody:wrong" end)
local n, thread_id = 0, 0
add(1, function()
  n = n + 1
  local rid = "soak" .. thread_id .. "x" .. n .. "x" .. math.random(1, 1e9)
  local cn = rid .. ".example.com"
  return "/billmgr?" .. order .. "&remoteid=" .. rid .. "&CN=" .. cn ..
    "&approver_email_1=admin%40" .. cn .. "&" .. ai
end)

bad = 0 -- global: read per thread in done()
local threads = {}
function setup(t) threads[#threads + 1] = t end
function init(args) math.randomseed(os.time()) end
local i = 0
function request()
  i = i % #mix + 1
  return wrk.format("GET", mix[(i * 37) % #mix + 1]())
end
function response(status, headers, body)
  if status ~= 200 or body:find('type="upstream"', 1, true) or body:find('"type":"upstream"', 1, true)
     or body:find('"$type":"upstream"', 1, true) then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get("bad") or 0) end
  io.write(string.format("soak-bad %d\n", total))
end
