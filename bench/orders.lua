-- wrk script: every request a new order (unique remoteid) as acme; counts the answers that
-- carry a certificate id (acknowledged, durably recorded orders). PREFIX keeps runs apart.
local prefix = os.getenv("PREFIX") or "b"
-- AUTHINFO and PRICELIST let the same script order straight from the sandbox (the baseline).
local authinfo = os.getenv("AUTHINFO") or "acme:acme-demo-pw"
local pricelist = os.getenv("PRICELIST") or "101"
local n = 0
ok = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  n = n + 1
  local id = prefix .. n
  local body = "func=certificate.order.param&sok=ok&skipbasket=on&remoteid=" .. id ..
    "&pricelist=" .. pricelist .. "&period=12&CN=" .. id .. ".example.com&approver_email_1=admin%40" .. id ..
    ".example.com&adm_fname=A&adm_lname=B&adm_email=a%40example.com&adm_phone=1&like_admin=on" ..
    "&authinfo=" .. authinfo
  return wrk.format("POST", "/billmgr", { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end

function response(status, headers, body)
  if body:find("<id>", 1, true) then
    ok = ok + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("ok")
  end
  io.write(string.format("acknowledged %d\n", total))
end
