-- AWS credentials for aws-lambda, in the order Kong (lua-resty-aws) and the
-- AWS SDKs look for them:
--
--   1. the plugin's aws_key / aws_secret
--   2. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
--      AWS_SESSION_TOKEN (also with the AMAZON_ prefix)
--   3. the shared credentials file: AWS_SHARED_CREDENTIALS_FILE or
--      ~/.aws/credentials, profile AWS_PROFILE (else "default")
--   4. the ECS container endpoint: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
--      on http://169.254.170.2 (SLUICE_AWS_ECS_ENDPOINT overrides that
--      base), or AWS_CONTAINER_CREDENTIALS_FULL_URI (loopback,
--      169.254.170.2, 169.254.170.23 or https only), with
--      AWS_CONTAINER_AUTHORIZATION_TOKEN or the file named by
--      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read on every fetch)
--   5. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
--      (+ AWS_ROLE_SESSION_NAME) -> STS AssumeRoleWithWebIdentity
--   6. EC2 instance metadata (AWS_EC2_METADATA_SERVICE_ENDPOINT, default
--      http://169.254.169.254; skipped when AWS_EC2_METADATA_DISABLED is
--      true): an IMDSv2 token first, then IMDSv1 unless
--      aws_imds_protocol_version is "v2"
--   then, when aws_assume_role_arn is set, STS AssumeRole signed with what
--   was found. STS is conf.aws_sts_endpoint_url, else AWS_ENDPOINT_URL_STS,
--   else https://sts.<region>.amazonaws.com.
--
-- Results live in this worker's memory. Temporary credentials are
-- refreshed ahead of their Expiration: inside the last quarter of their
-- lifetime (at most 5 minutes) one background timer fetches new ones while
-- requests keep using the old; once they are about to expire, requests
-- wait for a single fetch.
--
--   credentials.get(conf, region) -> { access_key, secret_key,
--                                      session_token, expiration, source }
--                                    | nil, err

local cjson = require "cjson.safe"
local util = require "kong.plugins.aws-lambda.util"


local type = type
local ipairs = ipairs
local tostring = tostring
local concat = table.concat
local match = string.match
local lower = string.lower
local getenv = os.getenv
local io_open = io.open
local min = math.min
local pcall = pcall


local _M = {}


local REFRESH_AHEAD_MAX = 300     -- s: refresh at most this long ahead
local REFRESH_AHEAD_FRACTION = 4  -- ... or within the last 1/4 lifetime
local EXPIRY_MARGIN_MAX = 10      -- s: unusable this close to Expiration
local METADATA_TIMEOUT = 1000     -- ms, for IMDS and ECS
local IMDS_TOKEN_TTL = "21600"
local ECS_HOST = "http://169.254.170.2"
local IMDS_HOST = "http://169.254.169.254"
local WAIT_STEP = 0.01
local NEGATIVE_TTL = 1            -- s: a failed fetch is answered from memory


-- cache key -> { creds, fetched_at, refresh_at, usable_until, busy, err,
--               err_until }
local cache = {}


local function now()
  ngx.update_time()
  return ngx.now()
end


local function env(name)
  local v = getenv(name)
  if v == "" then
    return nil
  end
  return v
end


local function read_file(path)
  local f, err = io_open(path, "rb")
  if not f then
    return nil, err
  end
  local data = f:read("*a")
  f:close()
  return data
end


local function trim(s)
  return s and match(s, "^%s*(.-)%s*$")
end


local function static(access_key, secret_key, token, source)
  if not access_key or not secret_key then
    return nil
  end
  return {
    access_key = access_key,
    secret_key = secret_key,
    session_token = token,
    source = source,
  }
end


local function from_env()
  return static(env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"),
                env("AWS_SESSION_TOKEN"), "env")
         or static(env("AMAZON_ACCESS_KEY_ID"),
                   env("AMAZON_SECRET_ACCESS_KEY"),
                   env("AMAZON_SESSION_TOKEN"), "env")
end


local function from_shared_file()
  local path = env("AWS_SHARED_CREDENTIALS_FILE")
  if not path then
    local home = env("HOME")
    if not home then
      return nil
    end
    path = home .. "/.aws/credentials"
  end
  local text = read_file(path)
  if not text then
    return nil
  end
  local profile = env("AWS_PROFILE") or env("AWS_DEFAULT_PROFILE")
                  or "default"
  local section = util.parse_ini(text)[profile]
  if not section then
    return nil, "profile '" .. profile .. "' not found in " .. path
  end
  return static(section.aws_access_key_id, section.aws_secret_access_key,
                section.aws_session_token, "shared file " .. path)
end


-- The JSON of ECS and IMDS: AccessKeyId, SecretAccessKey, Token,
-- Expiration (ISO-8601).
local function from_json(body, source)
  local t = cjson.decode(body or "")
  if type(t) ~= "table" or type(t.AccessKeyId) ~= "string"
     or type(t.SecretAccessKey) ~= "string"
  then
    return nil, source .. ": unexpected answer"
  end
  local creds = static(t.AccessKeyId, t.SecretAccessKey,
                       type(t.Token) == "string" and t.Token or nil, source)
  creds.expiration = util.parse_iso8601(t.Expiration)
  return creds
end


local function get(url, headers, method)
  local u, err = util.parse_url(url)
  if not u then
    return nil, err
  end
  return util.request({
    scheme = u.scheme,
    host = u.host,
    port = u.port,
    method = method or "GET",
    path = u.path,
    query = u.query,
    headers = headers,
    timeout = METADATA_TIMEOUT,
  })
end


local ECS_FULL_URI_HOSTS = {
  ["localhost"] = true,
  ["127.0.0.1"] = true,
  ["::1"] = true,
  ["169.254.170.2"] = true,
  ["169.254.170.23"] = true,
  ["fd00:ec2::23"] = true,
}


local function from_ecs()
  local url
  local relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
  if relative then
    local base = env("SLUICE_AWS_ECS_ENDPOINT") or ECS_HOST
    url = base:gsub("/+$", "") .. relative
  else
    url = env("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    if not url then
      return nil
    end
    local u = util.parse_url(url)
    if not u or u.scheme ~= "https" and not ECS_FULL_URI_HOSTS[u.host]
       and not match(u.host, "^127%.")
    then
      return nil, "ECS: host of AWS_CONTAINER_CREDENTIALS_FULL_URI is "
                  .. "not allowed: " .. url
    end
  end
  local headers = {}
  local token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN")
  local token_file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
  if token_file then
    local err
    token, err = read_file(token_file)
    if not token then
      return nil, "ECS: cannot read " .. token_file .. ": " .. tostring(err)
    end
    token = trim(token)
  end
  if token then
    headers["Authorization"] = token
  end
  local res, err = get(url, headers)
  if not res then
    return nil, "ECS: " .. err
  end
  if res.status ~= 200 then
    return nil, "ECS: " .. url .. " answered " .. res.status
  end
  return from_json(res.body, "ECS")
end


local function imds_get(base, path, token)
  local headers = token and { ["X-aws-ec2-metadata-token"] = token } or nil
  local res, err = get(base .. path, headers)
  if not res then
    return nil, err
  end
  if res.status ~= 200 then
    return nil, path .. " answered " .. res.status
  end
  return res.body
end


local function from_imds(conf)
  local disabled = env("AWS_EC2_METADATA_DISABLED")
  if disabled and lower(disabled) == "true" then
    return nil
  end
  local base = (env("AWS_EC2_METADATA_SERVICE_ENDPOINT") or IMDS_HOST)
               :gsub("/+$", "")
  local token
  local res, err = get(base .. "/latest/api/token",
                       { ["X-aws-ec2-metadata-token-ttl-seconds"] =
                         IMDS_TOKEN_TTL }, "PUT")
  if res and res.status == 200 and res.body ~= "" then
    token = res.body
  elseif conf.aws_imds_protocol_version == "v2" then
    return nil, "IMDSv2: no token ("
                .. tostring(res and res.status or err) .. ")"
  end
  local prefix = "/latest/meta-data/iam/security-credentials/"
  local roles
  roles, err = imds_get(base, prefix, token)
  if not roles then
    return nil, "IMDS: " .. err
  end
  local role = trim(match(roles, "^[^\n]*"))
  if not role or role == "" then
    return nil, "IMDS: no IAM role attached"
  end
  local body
  body, err = imds_get(base, prefix .. role, token)
  if not body then
    return nil, "IMDS: " .. err
  end
  return from_json(body, token and "IMDSv2" or "IMDSv1")
end


local function region_of(conf, region)
  return region or conf.aws_region or env("AWS_REGION")
         or env("AWS_DEFAULT_REGION") or "us-east-1"
end


local function sts_endpoint(conf, region)
  return conf.aws_sts_endpoint_url or env("AWS_ENDPOINT_URL_STS")
         or "https://sts." .. region .. ".amazonaws.com"
end


--- The Credentials of an STS answer (query protocol, XML).
local function from_sts_xml(body, source)
  local block = body and match(body, "<Credentials>(.-)</Credentials>")
  if not block then
    return nil, source .. ": unexpected answer"
  end
  local creds = static(util.xml_value(block, "AccessKeyId"),
                       util.xml_value(block, "SecretAccessKey"),
                       util.xml_value(block, "SessionToken"), source)
  if not creds then
    return nil, source .. ": unexpected answer"
  end
  creds.expiration = util.parse_iso8601(util.xml_value(block, "Expiration"))
  return creds
end
_M.from_sts_xml = from_sts_xml


local function sts_error(res)
  local msg = util.xml_value(res.body, "Message")
              or util.xml_value(res.body, "Code")
              or (res.body or ""):sub(1, 200)
  return "STS answered " .. res.status .. ": " .. msg
end


local function form(args)
  local out = {}
  for _, kv in ipairs(args) do
    out[#out + 1] = util.escape(kv[1]) .. "=" .. util.escape(kv[2])
  end
  return concat(out, "&")
end


-- POST an STS query-protocol action; signed when `creds` are given.
local function sts_call(conf, region, args, creds)
  local u, err = util.parse_url(sts_endpoint(conf, region))
  if not u then
    return nil, "STS: " .. err
  end
  local body = form(args)
  local headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8",
    ["Accept"] = "application/xml",
  }
  if creds then
    local sigv4 = require "sluice.aws.sigv4"
    local signed
    signed, err = sigv4.sign({
      method = "POST",
      host = u.host,
      port = u.port,
      tls = u.scheme == "https",
      path = u.path,
      query = u.query or "",
      headers = headers,
      body = body,
      region = region,
      service = "sts",
      access_key = creds.access_key,
      secret_key = creds.secret_key,
      session_token = creds.session_token,
    })
    if not signed then
      return nil, "STS: cannot sign: " .. tostring(err)
    end
    headers = signed
  end
  local res
  res, err = util.request({
    scheme = u.scheme,
    host = u.host,
    port = u.port,
    method = "POST",
    path = u.path,
    query = u.query,
    headers = headers,
    body = body,
    timeout = conf.timeout,
    ssl_verify = conf.ssl_verify,
    proxy_url = conf.proxy_url,
  })
  if not res then
    return nil, "STS: " .. err
  end
  if res.status ~= 200 then
    return nil, sts_error(res)
  end
  return res
end


local function from_web_identity(conf)
  local token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE")
  local role_arn = env("AWS_ROLE_ARN")
  if not token_file or not role_arn then
    return nil
  end
  local token, err = read_file(token_file)
  if not token then
    return nil, "web identity: cannot read " .. token_file .. ": "
                .. tostring(err)
  end
  local session = env("AWS_ROLE_SESSION_NAME")
                  or "sluice-" .. tostring(ngx.worker.pid())
  local region = region_of(conf)
  local res
  res, err = sts_call(conf, region, {
    { "Action", "AssumeRoleWithWebIdentity" },
    { "Version", "2011-06-15" },
    { "RoleArn", role_arn },
    { "RoleSessionName", session },
    { "WebIdentityToken", trim(token) },
  })
  if not res then
    return nil, "web identity: " .. err
  end
  return from_sts_xml(res.body, "web identity")
end


-- The default chain, after the plugin's own keys.
local CHAIN = {
  { name = "env", fn = from_env },
  { name = "shared file", fn = from_shared_file },
  { name = "ECS", fn = from_ecs },
  { name = "web identity", fn = from_web_identity },
  { name = "IMDS", fn = from_imds },
}


local function run_chain(conf)
  local errs = {}
  for _, p in ipairs(CHAIN) do
    local creds, err = p.fn(conf)
    if creds then
      return creds
    end
    if err then
      errs[#errs + 1] = err
    end
  end
  if #errs > 0 then
    return nil, "no credentials found (" .. concat(errs, "; ") .. ")"
  end
  return nil, "no credentials found"
end


-- Records fresh credentials in a cache entry with their refresh times.
local function store(entry, creds)
  local t = now()
  entry.creds = creds
  entry.fetched_at = t
  local exp = creds.expiration
  if exp then
    local life = exp - t
    entry.refresh_at = exp - min(REFRESH_AHEAD_MAX,
                                 life / REFRESH_AHEAD_FRACTION)
    entry.usable_until = exp - min(EXPIRY_MARGIN_MAX, life / 10)
  else
    entry.refresh_at = nil
    entry.usable_until = nil
  end
end


local function fetch_into(entry, fetch)
  entry.busy = true
  local ok, creds, err = pcall(fetch)
  entry.busy = false
  if not ok then
    return nil, tostring(creds)
  end
  if creds then
    store(entry, creds)
    entry.err = nil
    entry.err_until = nil
    return creds
  end
  entry.err = err
  entry.err_until = now() + NEGATIVE_TTL
  return nil, err
end


local function background_refresh(premature, entry, fetch)
  if premature then
    return
  end
  local creds, err = fetch_into(entry, fetch)
  if err then
    ngx.log(ngx.WARN, "[aws-lambda] refreshing credentials failed: ", err)
  else
    ngx.log(ngx.DEBUG, "[aws-lambda] credentials refreshed in the ",
            "background (", creds.source, ")")
  end
end


-- The cached credentials of `key`, fetched with `fetch()` when missing,
-- refreshed ahead of expiry, one fetch at a time. `wait` (s) bounds how
-- long a request waits for somebody else's fetch.
local function cached(key, fetch, wait)
  local entry = cache[key]
  if not entry then
    entry = {}
    cache[key] = entry
  end
  local t = now()
  local creds = entry.creds
  if creds and (not entry.usable_until or t < entry.usable_until) then
    if entry.refresh_at and t >= entry.refresh_at and not entry.busy then
      entry.busy = true
      local ok = ngx.timer.at(0, function(premature)
        entry.busy = false
        background_refresh(premature, entry, fetch)
      end)
      if not ok then
        entry.busy = false
      end
    end
    return creds
  end
  if entry.busy then
    local deadline = t + wait
    while entry.busy and now() < deadline do
      ngx.sleep(WAIT_STEP)
    end
    if entry.creds and entry.creds ~= creds then
      return entry.creds
    end
    if entry.busy then
      return nil, "timeout waiting for credentials"
    end
  end
  if entry.err_until and now() < entry.err_until then
    return nil, entry.err
  end
  return fetch_into(entry, fetch)
end


local function assume_role(conf, base, region)
  local res, err = sts_call(conf, region, {
    { "Action", "AssumeRole" },
    { "Version", "2011-06-15" },
    { "RoleArn", conf.aws_assume_role_arn },
    { "RoleSessionName", conf.aws_role_session_name or "kong" },
  }, base)
  if not res then
    return nil, "assume role: " .. err
  end
  return from_sts_xml(res.body, "assume role")
end


--- Credentials for a call from this plugin config (see the header).
function _M.get(conf, region)
  local wait = (conf.timeout or 60000) / 1000
  local base, err
  if conf.aws_key and conf.aws_secret then
    base = static(conf.aws_key, conf.aws_secret, nil, "config")
  else
    local key = "chain:" .. tostring(conf.aws_imds_protocol_version) .. ":"
                .. tostring(conf.aws_sts_endpoint_url) .. ":"
                .. tostring(conf.aws_region)
    base, err = cached(key, function()
      return run_chain(conf)
    end, wait)
    if not base then
      return nil, err
    end
  end
  if not conf.aws_assume_role_arn then
    return base
  end
  local sts_region = region_of(conf, region)
  -- one entry per role and base identity (not per rotation of chain
  -- credentials: the assumed ones live on their own expiry)
  local key = "assume:" .. tostring(conf.aws_key or "chain") .. ":"
              .. conf.aws_assume_role_arn .. ":"
              .. tostring(conf.aws_role_session_name) .. ":"
              .. sts_endpoint(conf, sts_region)
  return cached(key, function()
    return assume_role(conf, base, sts_region)
  end, wait)
end


return _M
