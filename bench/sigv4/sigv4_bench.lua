-- Runs inside the gateway for bench/sigv4.sh (a pre-function route calls
-- handle()). GET /bench?check=1 signs every request with both signers and
-- answers "ok" when their Authorization headers agree (and the C one
-- reproduces the AWS get-vanilla signature); GET /bench?signer=c|lua&ms=N
-- signs the requests in a loop for N ms and answers
-- "<signer> <signatures> <seconds> <per second>".

local sigv4 = require "sluice.aws.sigv4"
local pure = require "pure_sigv4"
local C = require "sluice.ffi.cdefs"


local now = C.sl_ffi_now
local format = string.format
local rep = string.rep
local tonumber = tonumber
local tostring = tostring
local pairs = pairs
local ipairs = ipairs


local TS = 1440938160 -- 20150830T123600Z: one day, so both caches hit
local TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE" .. rep("Zm9vYmFy", 50) .. "=="


-- representative requests: a Lambda Invoke with temporary credentials, an
-- API Gateway GET with a query, an STS form POST
local REQUESTS = {
  {
    method = "POST", host = "lambda.eu-west-1.amazonaws.com", port = 443,
    path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A"
           .. "123456789012%3Afunction%3Aorders/invocations",
    query = "Qualifier=prod",
    headers = {
      ["Content-Type"] = "application/json",
      ["X-Amz-Invocation-Type"] = "RequestResponse",
      ["X-Amz-Log-Type"] = "None",
    },
    body = '{"httpMethod":"POST","path":"/orders","headers":{"accept":'
           .. '"application/json","user-agent":"curl/8.0"},"body":'
           .. '"{\\"sku\\":\\"A-1\\",\\"qty\\":2}","isBase64Encoded":false,'
           .. '"requestContext":{"requestId":"c6af9ac6-7b61-11e6-9a41"}}',
    region = "eu-west-1", service = "lambda",
    access_key = "ASIAEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
    session_token = TOKEN, timestamp = TS,
  },
  {
    method = "GET", host = "abc123.execute-api.us-east-1.amazonaws.com",
    path = "/prod/items/42",
    query = "limit=25&sort=desc&filter=color%20eq%20red&page=3",
    headers = { ["Accept"] = "application/json" },
    region = "us-east-1", service = "execute-api",
    access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
    timestamp = TS,
  },
  {
    method = "POST", host = "sts.us-east-1.amazonaws.com", path = "/",
    headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8",
    },
    body = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A"
           .. "%3A123456789012%3Arole%2Fdemo&RoleSessionName=sluice",
    region = "us-east-1", service = "sts",
    access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
    timestamp = TS,
  },
}

local VANILLA = {
  method = "GET", host = "example.amazonaws.com", path = "/",
  region = "us-east-1", service = "service", access_key = "AKIDEXAMPLE",
  secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", timestamp = TS,
}
local VANILLA_SIG = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d"
                    .. "763fbf31"

local SIGNERS = { c = sigv4.sign, lua = pure.sign }


local _M = {}


function _M.check()
  for name, fn in pairs({ c = sigv4.sign, lua = pure.sign }) do
    local h, err = fn(VANILLA)
    if not h then
      return name .. ": " .. tostring(err)
    end
    if not h.Authorization:find(VANILLA_SIG, 1, true) then
      return name .. ": get-vanilla gives " .. h.Authorization
    end
  end
  for i, r in ipairs(REQUESTS) do
    local a, err = sigv4.sign(r)
    if not a then
      return "request " .. i .. ": C signer: " .. tostring(err)
    end
    local b = pure.sign(r)
    if a.Authorization ~= b.Authorization then
      return "request " .. i .. ": the signers disagree:\n  c:   "
             .. a.Authorization .. "\n  lua: " .. b.Authorization
    end
  end
  return "ok"
end


function _M.run(signer, ms)
  local fn = SIGNERS[signer]
  if not fn then
    return nil, "unknown signer"
  end
  local n = 0
  local t0 = now()
  local deadline = t0 + ms / 1000
  local t = t0
  while t < deadline do
    for _ = 1, 20 do
      for i = 1, #REQUESTS do
        fn(REQUESTS[i])
      end
    end
    n = n + 20 * #REQUESTS
    t = now()
  end
  local secs = t - t0
  return format("%s %d %.3f %.1f", signer, n, secs, n / secs)
end


function _M.handle()
  if kong.request.get_query_arg("check") then
    return kong.response.exit(200, _M.check() .. "\n")
  end
  local ms = tonumber(kong.request.get_query_arg("ms")) or 500
  if ms < 50 or ms > 2000 then
    return kong.response.exit(400, "ms: 50 to 2000\n")
  end
  local out, err = _M.run(kong.request.get_query_arg("signer"), ms)
  if not out then
    return kong.response.exit(400, err .. "\n")
  end
  return kong.response.exit(200, out .. "\n")
end


return _M
