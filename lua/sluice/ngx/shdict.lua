-- sluice.ngx.shdict: ngx.shared.DICT over core/lua/sl_shdict.c, via the FFI.
--
-- Usage:
--
--   local shdict = require "sluice.ngx.shdict"
--   shdict.init(ffi.C)            -- or the test build's ffi.load(...) library
--   ngx.shared = shdict.shared    -- ngx.shared.<zone>:get(...) etc.
--
-- shdict.shared is filled eagerly with every zone the master registered before
-- the fork (so pairs() sees them); a name that is not there yet is looked up
-- once through sl_ffi_shdict_find and cached. An unknown name gives nil.
--
-- Methods, return values and messages follow lua-resty-core's
-- lib/resty/core/shdict.lua (and lua-nginx-module for the list methods,
-- flush_expired and get_keys). A bad zone (calling dict.get instead of
-- dict:get) raises "bad \"zone\" argument"; a nil, empty or too long key
-- returns nil, "nil key" / "empty key" / "key too long"; a key that is not a
-- string or a number raises.

local ffi = require "ffi"


local ffi_new = ffi.new
local ffi_str = ffi.string
local type = type
local error = error
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local rawset = rawset


local SL_OK = 0
local SL_AGAIN = -2
local SL_DECLINED = -5

local T_NIL = 0
local T_BOOLEAN = 1
local T_NUMBER = 3
local T_STRING = 4

local OP_SET = 0
local OP_ADD = 0x0001
local OP_REPLACE = 0x0002
local OP_SAFE = 0x0004

local MAX_KEY_LEN = 65535
local BUF_SIZE = 4096
local DEFAULT_MAX_KEYS = 1024


if not pcall(ffi.typeof, "sl_shdict_val_t") then
  ffi.cdef [[
typedef struct sl_shdict_s sl_shdict_t;

typedef struct sl_shdict_val_s {
    int type;
    uint32_t flags;
    double num;
    const char *str;
    size_t len;
    int64_t ttl_ms;
    int stale;
    int forcible;
    const char *err;
} sl_shdict_val_t;

int sl_ffi_shdict_find(const char *name, size_t len, sl_shdict_t **out);
int sl_ffi_shdict_zones_count(void);
int sl_ffi_shdict_zone(int i, sl_shdict_t **out, const char **name,
    size_t *len);
int sl_ffi_shdict_get(sl_shdict_t *d, const char *key, size_t klen,
    int get_stale, char *buf, size_t buflen, sl_shdict_val_t *v);
int sl_ffi_shdict_store(sl_shdict_t *d, int op, const char *key, size_t klen,
    sl_shdict_val_t *v);
int sl_ffi_shdict_delete(sl_shdict_t *d, const char *key, size_t klen);
int sl_ffi_shdict_incr(sl_shdict_t *d, const char *key, size_t klen,
    double value, int has_init, double init, int64_t init_ttl_ms,
    sl_shdict_val_t *v);
int sl_ffi_shdict_push(sl_shdict_t *d, int right, const char *key,
    size_t klen, sl_shdict_val_t *v);
int sl_ffi_shdict_pop(sl_shdict_t *d, int right, const char *key,
    size_t klen, char *buf, size_t buflen, sl_shdict_val_t *v);
int sl_ffi_shdict_llen(sl_shdict_t *d, const char *key, size_t klen,
    sl_shdict_val_t *v);
int sl_ffi_shdict_ttl(sl_shdict_t *d, const char *key, size_t klen,
    int64_t *ttl_ms);
int sl_ffi_shdict_expire(sl_shdict_t *d, const char *key, size_t klen,
    int64_t ttl_ms);
int sl_ffi_shdict_flush_all(sl_shdict_t *d);
int sl_ffi_shdict_flush_expired(sl_shdict_t *d, int max_count, int *freed);
int sl_ffi_shdict_get_keys_count(sl_shdict_t *d, int max_count, size_t *n,
    size_t *total_len);
int sl_ffi_shdict_get_keys(sl_shdict_t *d, int max_count, char *buf,
    size_t *buflen, size_t *lens, size_t *n);
int sl_ffi_shdict_capacity(sl_shdict_t *d, size_t *out);
int sl_ffi_shdict_free_space(sl_shdict_t *d, size_t *out);
]]
end


local _M = {}


local C -- the library exporting sl_ffi_shdict_*; set by init()

local val = ffi_new("sl_shdict_val_t[1]")
local buf = ffi_new("char[?]", BUF_SIZE)
local handle_out = ffi_new("sl_shdict_t *[1]")
local name_out = ffi_new("const char *[1]")
local size_out = ffi_new("size_t[1]")
local size_out2 = ffi_new("size_t[1]")
local int64_out = ffi_new("int64_t[1]")
local int_out = ffi_new("int[1]")


local function check_zone(zone)
  if type(zone) ~= "table" then
    error("bad \"zone\" argument", 3)
  end

  local d = zone[1]
  if type(d) ~= "cdata" then
    error("bad \"zone\" argument", 3)
  end

  return d
end


-- Returns the key as a string, or nil and the error resty.core returns.
local function check_key(key)
  if key == nil then
    return nil, "nil key"
  end

  local typ = type(key)
  if typ ~= "string" then
    if typ ~= "number" then
      error("bad \"key\" argument: string or number expected, got " .. typ, 3)
    end
    key = tostring(key)
  end

  local len = #key
  if len == 0 then
    return nil, "empty key"
  end

  if len > MAX_KEY_LEN then
    return nil, "key too long"
  end

  return key
end


local function errmsg(v)
  if v.err ~= nil then
    return ffi_str(v.err)
  end
  return "unknown error"
end


-- The scalar in val[0] after a get/pop; strings are in b (of the call).
local function scalar(v, b)
  local typ = v.type
  if typ == T_STRING then
    return ffi_str(b, v.len)
  elseif typ == T_NUMBER then
    return tonumber(v.num)
  elseif typ == T_BOOLEAN then
    return v.num ~= 0
  end
  return nil
end


-- A value larger than the shared buffer: retry with one of its size (the
-- loop lives apart so that the common path stays a simple JIT trace).
local function get_big(d, key, get_stale)
  local v = val[0]
  while true do
    local b = ffi_new("char[?]", v.len)
    local rc = C.sl_ffi_shdict_get(d, key, #key, get_stale, b, v.len, val)
    if rc ~= SL_AGAIN then
      return rc, b
    end
  end
end


-- Runs a get (get_stale 0/1); returns rc and the buffer holding the string.
local function do_get(d, key, get_stale)
  local rc = C.sl_ffi_shdict_get(d, key, #key, get_stale, buf, BUF_SIZE, val)
  if rc ~= SL_AGAIN then
    return rc, buf
  end
  return get_big(d, key, get_stale)
end


local function shdict_get(zone, key)
  local d = check_zone(zone)
  local err
  key, err = check_key(key)
  if not key then
    return nil, err
  end

  local rc, b = do_get(d, key, 0)
  local v = val[0]
  if rc ~= SL_OK then
    return nil, errmsg(v)
  end

  if v.type == T_NIL then
    return nil
  end

  local value = scalar(v, b)
  local flags = tonumber(v.flags)
  if flags ~= 0 then
    return value, flags
  end

  return value
end


local function shdict_get_stale(zone, key)
  local d = check_zone(zone)
  local err
  key, err = check_key(key)
  if not key then
    return nil, err
  end

  local rc, b = do_get(d, key, 1)
  local v = val[0]
  if rc ~= SL_OK then
    return nil, errmsg(v)
  end

  if v.type == T_NIL then
    return nil
  end

  local value = scalar(v, b)
  local flags = tonumber(v.flags)
  if flags ~= 0 then
    return value, flags, v.stale == 1
  end

  return value, nil, v.stale == 1
end


-- Puts value into the shared value buffer for C: strings and numbers, and
-- unless lists_only (list items) nil and booleans. Returns the buffer, or nil
-- for a type a dictionary cannot hold.
local function load_value(value, lists_only)
  local v = val[0]
  local typ = type(value)
  v.str = nil
  v.len = 0
  v.num = 0

  if typ == "string" then
    v.type = T_STRING
    v.str = value
    v.len = #value

  elseif typ == "number" then
    v.type = T_NUMBER
    v.num = value

  elseif lists_only then
    return nil

  elseif value == nil then
    v.type = T_NIL

  elseif typ == "boolean" then
    v.type = T_BOOLEAN
    v.num = value and 1 or 0

  else
    return nil
  end
  return v
end


local function shdict_store(zone, op, key, value, exptime, flags)
  local d = check_zone(zone)

  if not exptime then
    exptime = 0
  elseif type(exptime) ~= "number" or exptime < 0 then
    error("bad \"exptime\" argument", 3)
  end

  if not flags then
    flags = 0
  elseif type(flags) ~= "number" then
    error("bad \"flags\" argument", 3)
  end

  local err
  key, err = check_key(key)
  if not key then
    return nil, err
  end

  local v = load_value(value, false)
  if not v then
    return nil, "bad value type"
  end

  v.flags = flags
  v.ttl_ms = exptime * 1000

  local rc = C.sl_ffi_shdict_store(d, op, key, #key, val)
  v.str = nil -- do not keep a pointer into the Lua string

  if rc == SL_OK then
    return true, nil, v.forcible == 1
  end

  return false, errmsg(v), v.forcible == 1
end


local function shdict_set(zone, key, value, exptime, flags)
  return shdict_store(zone, OP_SET, key, value, exptime, flags)
end


local function shdict_safe_set(zone, key, value, exptime, flags)
  return shdict_store(zone, OP_SAFE, key, value, exptime, flags)
end


local function shdict_add(zone, key, value, exptime, flags)
  return shdict_store(zone, OP_ADD, key, value, exptime, flags)
end


local function shdict_safe_add(zone, key, value, exptime, flags)
  return shdict_store(zone, OP_ADD + OP_SAFE, key, value, exptime, flags)
end


local function shdict_replace(zone, key, value, exptime, flags)
  return shdict_store(zone, OP_REPLACE, key, value, exptime, flags)
end


local function shdict_delete(zone, key)
  return shdict_store(zone, OP_SET, key, nil)
end


local function shdict_incr(zone, key, value, init, init_ttl)
  local d = check_zone(zone)
  local err
  key, err = check_key(key)
  if not key then
    return nil, err
  end

  if type(value) ~= "number" then
    local typ = type(value)
    value = tonumber(value)
    if not value then
      error("bad value arg: number expected, got " .. typ, 2)
    end
  end

  if init then
    local typ = type(init)
    if typ ~= "number" then
      init = tonumber(init)
      if not init then
        error("bad init arg: number expected, got " .. typ, 2)
      end
    end
  end

  if init_ttl ~= nil then
    local typ = type(init_ttl)
    if typ ~= "number" then
      init_ttl = tonumber(init_ttl)
      if not init_ttl then
        error("bad init_ttl arg: number expected, got " .. typ, 2)
      end
    end

    if init_ttl < 0 then
      error("bad \"init_ttl\" argument", 2)
    end

    if not init then
      error("must provide \"init\" when providing \"init_ttl\"", 2)
    end

  else
    init_ttl = 0
  end

  local v = val[0]
  local rc = C.sl_ffi_shdict_incr(d, key, #key, value, init and 1 or 0,
                                  init or 0, init_ttl * 1000, val)
  if rc ~= SL_OK then
    return nil, errmsg(v)
  end

  if not init then
    return tonumber(v.num)
  end

  return tonumber(v.num), nil, v.forcible == 1
end


local function shdict_push(zone, right, key, value)
  local d = check_zone(zone)
  local err
  key, err = check_key(key)
  if not key then
    return nil, err
  end

  local v = load_value(value, true)
  if not v then
    return nil, "bad value type"
  end

  local rc = C.sl_ffi_shdict_push(d, right, key, #key, val)
  v.str = nil
  if rc ~= SL_OK then
    return nil, errmsg(v)
  end

  return tonumber(v.len)
end


local function shdict_lpush(zone, key, value)
  return shdict_push(zone, 0, key, value)
end


local function shdict_rpush(zone, key, value)
  return shdict_push(zone, 1, key, value)
end


local function pop_big(d, right, key)
  local v = val[0]
  while true do
    local b = ffi_new("char[?]", v.len)
    local rc = C.sl_ffi_shdict_pop(d, right, key, #key, b, v.len, val)
    if rc ~= SL_AGAIN then
      return rc, b
    end
  end
end


local function shdict_pop(zone, right, key)
  local d = check_zone(zone)
  local err
  key, err = check_key(key)
  if not key then
    return nil, err
  end

  local v = val[0]
  local b = buf
  local rc = C.sl_ffi_shdict_pop(d, right, key, #key, b, BUF_SIZE, val)
  if rc == SL_AGAIN then
    rc, b = pop_big(d, right, key)
  end

  if rc ~= SL_OK then
    return nil, errmsg(v)
  end

  return scalar(v, b)
end


local function shdict_lpop(zone, key)
  return shdict_pop(zone, 0, key)
end


local function shdict_rpop(zone, key)
  return shdict_pop(zone, 1, key)
end


local function shdict_llen(zone, key)
  local d = check_zone(zone)
  local err
  key, err = check_key(key)
  if not key then
    return nil, err
  end

  local v = val[0]
  if C.sl_ffi_shdict_llen(d, key, #key, val) ~= SL_OK then
    return nil, errmsg(v)
  end

  return tonumber(v.len)
end


local function shdict_ttl(zone, key)
  local d = check_zone(zone)
  local err
  key, err = check_key(key)
  if not key then
    return nil, err
  end

  local rc = C.sl_ffi_shdict_ttl(d, key, #key, int64_out)
  if rc == SL_DECLINED then
    return nil, "not found"
  end

  if rc ~= SL_OK then
    return nil, "failed to lock the zone"
  end

  return tonumber(int64_out[0]) / 1000
end


local function shdict_expire(zone, key, exptime)
  local d = check_zone(zone)

  if type(exptime) ~= "number" or exptime < 0 then
    error("bad \"exptime\" argument", 2)
  end

  local err
  key, err = check_key(key)
  if not key then
    return nil, err
  end

  local rc = C.sl_ffi_shdict_expire(d, key, #key, exptime * 1000)
  if rc == SL_DECLINED then
    return nil, "not found"
  end

  if rc ~= SL_OK then
    return nil, "failed to lock the zone"
  end

  return true
end


local function shdict_flush_all(zone)
  local d = check_zone(zone)
  C.sl_ffi_shdict_flush_all(d)
end


local function shdict_flush_expired(zone, max_count)
  local d = check_zone(zone)

  if max_count == nil then
    max_count = 0
  elseif type(max_count) ~= "number" then
    error("bad argument #1 to 'flush_expired' (number expected, got "
          .. type(max_count) .. ")", 2)
  end

  C.sl_ffi_shdict_flush_expired(d, max_count, int_out)
  return tonumber(int_out[0])
end


local function shdict_get_keys(zone, max_count)
  local d = check_zone(zone)

  if max_count == nil then
    max_count = DEFAULT_MAX_KEYS
  elseif type(max_count) ~= "number" then
    error("bad argument #1 to 'get_keys' (number expected, got "
          .. type(max_count) .. ")", 2)
  end

  if C.sl_ffi_shdict_get_keys_count(d, max_count, size_out, size_out2)
     ~= SL_OK
  then
    return {}
  end

  local n, total = tonumber(size_out[0]), tonumber(size_out2[0])
  while true do
    local lens = ffi_new("size_t[?]", n + 1)
    local kbuf = ffi_new("char[?]", total + 1)
    size_out[0] = n
    size_out2[0] = total
    local rc = C.sl_ffi_shdict_get_keys(d, max_count, kbuf, size_out2, lens,
                                        size_out)
    if rc == SL_OK then
      local keys = {}
      local pos = 0
      for i = 0, tonumber(size_out[0]) - 1 do
        local len = tonumber(lens[i])
        keys[i + 1] = ffi_str(kbuf + pos, len)
        pos = pos + len
      end
      return keys
    end

    if rc ~= SL_AGAIN then
      return {}
    end

    -- the zone changed between the count and the fill: retry with its sizes
    n, total = tonumber(size_out[0]), tonumber(size_out2[0])
  end
end


local function shdict_capacity(zone)
  local d = check_zone(zone)
  C.sl_ffi_shdict_capacity(d, size_out)
  return tonumber(size_out[0])
end


local function shdict_free_space(zone)
  local d = check_zone(zone)
  C.sl_ffi_shdict_free_space(d, size_out)
  return tonumber(size_out[0])
end


local methods = {
  get = shdict_get,
  get_stale = shdict_get_stale,
  set = shdict_set,
  safe_set = shdict_safe_set,
  add = shdict_add,
  safe_add = shdict_safe_add,
  replace = shdict_replace,
  delete = shdict_delete,
  incr = shdict_incr,
  lpush = shdict_lpush,
  rpush = shdict_rpush,
  lpop = shdict_lpop,
  rpop = shdict_rpop,
  llen = shdict_llen,
  ttl = shdict_ttl,
  expire = shdict_expire,
  flush_all = shdict_flush_all,
  flush_expired = shdict_flush_expired,
  get_keys = shdict_get_keys,
  capacity = shdict_capacity,
  free_space = shdict_free_space,
}

local DICT_MT = { __index = methods }


local function new_dict(handle)
  return setmetatable({ handle }, DICT_MT)
end


-- ngx.shared's own metatable: unknown names are looked up once.
local SHARED_MT = {
  __index = function(t, name)
    if type(name) ~= "string" or C == nil then
      return nil
    end

    if C.sl_ffi_shdict_find(name, #name, handle_out) ~= SL_OK then
      return nil
    end

    local dict = new_dict(handle_out[0])
    rawset(t, name, dict)
    return dict
  end,
}


--- Binds the module to the library exporting sl_ffi_shdict_* and builds
-- `_M.shared` (the `ngx.shared` table) from the zones registered so far.
-- @tparam userdata clib `ffi.C` in the gateway, or an `ffi.load`ed library
-- @treturn table the `ngx.shared` table
function _M.init(clib)
  C = clib
  local shared = setmetatable({}, SHARED_MT)
  for i = 0, C.sl_ffi_shdict_zones_count() - 1 do
    if C.sl_ffi_shdict_zone(i, handle_out, name_out, size_out) == SL_OK then
      local name = ffi_str(name_out[0], size_out[0])
      rawset(shared, name, new_dict(handle_out[0]))
    end
  end

  _M.shared = shared
  return shared
end


_M.methods = methods -- for extensions that add methods, as with resty.core


return _M
