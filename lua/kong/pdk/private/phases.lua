-- Kong's PDK phase masks and checks (kong/pdk/private/phases.lua): the same
-- bits, names and error messages, so plugins see the errors they expect.

local bit = require "bit"


local band = bit.band
local bor = bit.bor
local error = error
local concat = table.concat


local PHASES = {
  init_worker = 0x00000001,
  certificate = 0x00000002,
  client_hello = 0x00000008,
  rewrite = 0x00000010,
  access = 0x00000020,
  balancer = 0x00000040,
  response = 0x00000080,
  cluster_listener = 0x00000100,
  header_filter = 0x00000200,
  body_filter = 0x00000400,
  error = 0x01000000,
  log = 0x00002000,
  preread = 0x00004000,
  admin_api = 0x10000000,
}

-- names in bit order, for messages
local ORDER = {
  "init_worker", "certificate", "client_hello", "rewrite", "access",
  "balancer", "response", "cluster_listener", "header_filter", "body_filter",
  "log", "preread", "error", "admin_api",
}

PHASES.request = bor(PHASES.rewrite, PHASES.access, PHASES.balancer,
                     PHASES.response, PHASES.header_filter,
                     PHASES.body_filter, PHASES.log, PHASES.error,
                     PHASES.admin_api, PHASES.cluster_listener)


local _M = {
  phases = PHASES,
  current = nil,     -- the phase name the runtime is in (nil: none)
}


local function names(mask)
  local out = {}
  for _, n in ipairs(ORDER) do
    if band(mask, PHASES[n]) ~= 0 then
      out[#out + 1] = n
    end
  end
  return concat(out, ", ")
end


function _M.new(...)
  local mask = 0
  for i = 1, select("#", ...) do
    mask = bor(mask, select(i, ...))
  end
  return mask
end


function _M.check(mask)
  local cur = _M.current
  if not cur then
    -- Kong skips the check without a running kong (unit tests); the runtime
    -- always sets a phase, so this only happens outside requests
    return
  end
  local bit_ = PHASES[cur]
  if bit_ and band(mask, bit_) == 0 then
    error("function cannot be called in " .. cur .. " phase (only in: "
          .. names(mask) .. ")", 3)
  end
end


function _M.check_not(mask)
  local cur = _M.current
  if not cur then
    return
  end
  local bit_ = PHASES[cur]
  if bit_ and band(mask, bit_) ~= 0 then
    error("function cannot be called in " .. cur .. " phase (can be called "
          .. "in any phases except: " .. names(mask) .. ")", 3)
  end
end


function _M.in_request()
  local cur = _M.current
  return cur ~= nil and band(PHASES.request, PHASES[cur] or 0) ~= 0
end


return _M
