-- kong.cache for plugins: a per-worker cache with Kong's method names
-- (mlcache semantics for get: call the callback on a miss, cache its value,
-- negative results too, honour ttl/neg_ttl). Not shared between workers yet.

local ngx_now = require("sluice.ngx.time").now


local _M = {}
local mt = { __index = _M }


function _M.new()
  return setmetatable({ data = {} }, mt)
end


local NIL = {}


function _M:get(key, opts, cb, ...)
  if type(key) ~= "string" then
    error("key must be a string", 2)
  end
  local e = self.data[key]
  local now = ngx_now()
  if e and (e.exp == 0 or e.exp > now) then
    if e.v == NIL then
      return nil
    end
    return e.v
  end
  if not cb then
    return nil
  end
  local ok, v, err = pcall(cb, ...)
  if not ok then
    return nil, "callback threw an error: " .. tostring(v)
  end
  if err then
    return nil, err
  end
  local ttl = opts and (v == nil and opts.neg_ttl or opts.ttl) or 0
  self.data[key] = { v = v == nil and NIL or v,
                     exp = ttl > 0 and now + ttl or 0 }
  return v
end


function _M:probe(key)
  local e = self.data[key]
  if e and (e.exp == 0 or e.exp > ngx_now()) then
    return 0, nil, e.v == NIL and nil or e.v
  end
  return nil
end


function _M:invalidate(key)
  self.data[key] = nil
  return true
end
_M.invalidate_local = _M.invalidate


function _M:safe_set(key, value)
  self.data[key] = { v = value == nil and NIL or value, exp = 0 }
  return true
end


function _M:renew(key, opts, cb, ...)
  self.data[key] = nil
  return self:get(key, opts, cb, ...)
end


function _M:purge()
  self.data = {}
  return true
end


return _M
