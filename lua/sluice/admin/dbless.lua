-- DB-less mode: a configuration accepted by POST /config in one worker
-- reaches every worker of the node within a second.
--
-- The accepting worker applies it, writes it (normalized, ids included) to
-- <prefix>/dbless.json with its generation, then bumps the generation in
-- the `kong` shared dictionary (or, without that dictionary, in
-- <prefix>/dbless.gen). Every worker polls the generation every 0.25 s
-- (init_worker) and applies the file when it changed. One load at a time
-- per node: a second POST /config meanwhile gets Kong's 429.
--
--   require("sluice.admin.dbless").init_worker()   -- when database = off
--   local ok, err = dbless.publish(normalized)     -- after applying it here

local cjson = require "cjson.safe"


local type = type
local pairs = pairs
local pcall = pcall
local tostring = tostring
local tonumber = tonumber
local require = require
local io_open = io.open
local os_rename = os.rename
local os_remove = os.remove
local gsub = string.gsub


local DICT = "kong"
local GEN_KEY = "sluice:dbless:generation"
local LOCK_KEY = "sluice:dbless:lock"
local LOCK_TTL = 60
local POLL_INTERVAL = 0.25


local _M = {
  POLL_INTERVAL = POLL_INTERVAL,
}


local applied = 0      -- the generation this worker runs
local outage = false   -- one log line per failure streak


local function prefix()
  local p = kong and kong.configuration and kong.configuration.prefix
  if type(p) ~= "string" or p == "" then
    return "."
  end
  return (gsub(p, "/+$", ""))
end


function _M.path()
  return prefix() .. "/dbless.json"
end


local function gen_path()
  return prefix() .. "/dbless.gen"
end


local function dict()
  return ngx.shared and ngx.shared[DICT] or nil
end


local function read_file(path)
  local f = io_open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("*a")
  f:close()
  return data
end


-- write to a temporary name, then rename: readers never see half a file
local function write_file(path, data)
  local tmp = path .. ".tmp." .. tostring(ngx.worker.pid())
  local f, err = io_open(tmp, "wb")
  if not f then
    return nil, err
  end
  local ok, werr = f:write(data)
  f:close()
  if not ok then
    os_remove(tmp)
    return nil, werr
  end
  local rok, rerr = os_rename(tmp, path)
  if not rok then
    os_remove(tmp)
    return nil, rerr
  end
  return true
end


--- The node's current DB-less generation (0: none posted).
function _M.generation()
  local d = dict()
  if d then
    return tonumber(d:get(GEN_KEY)) or 0
  end
  return tonumber(read_file(gen_path())) or 0
end


local function bump()
  local d = dict()
  if d then
    local n, err = d:incr(GEN_KEY, 1, 0)
    if not n then
      return nil, err
    end
    return n
  end
  local n = _M.generation() + 1
  local ok, err = write_file(gen_path(), tostring(n))
  if not ok then
    return nil, err
  end
  return n
end


--- Takes the node-wide load lock. Returns true, or nil when another
-- load is running.
function _M.lock()
  local d = dict()
  if not d then
    return true
  end
  local ok, err = d:add(LOCK_KEY, true, LOCK_TTL)
  if not ok and err == "exists" then
    return nil
  end
  return true
end


function _M.unlock()
  local d = dict()
  if d then
    d:delete(LOCK_KEY)
  end
end


--- Writes the normalized configuration this worker just applied so every
-- other worker applies it too. Returns the new generation or nil, err.
function _M.publish(normalized)
  local next_gen = _M.generation() + 1
  local doc = {}
  for k, v in pairs(normalized) do
    doc[k] = v
  end
  local text, err = cjson.encode({ generation = next_gen, config = doc })
  if not text then
    return nil, err
  end
  local ok
  ok, err = write_file(_M.path(), text)
  if not ok then
    return nil, err
  end
  local n
  n, err = bump()
  if not n then
    return nil, err
  end
  applied = n
  return n
end


--- One poll: applies the published configuration when its generation is
-- not the one this worker runs. Returns true when it applied one.
function _M.poll()
  local gen = _M.generation()
  if gen == 0 or gen == applied then
    return false
  end
  local text = read_file(_M.path())
  local file = text and cjson.decode(text)
  if type(file) ~= "table" or type(file.config) ~= "table" then
    if not outage then
      ngx.log(ngx.ERR, "DB-less: cannot read the posted configuration ",
              _M.path())
      outage = true
    end
    return false
  end
  local config = require "sluice.config"
  local doc = file.config
  doc._format_version = doc._format_version or "3.0"
  local ok, err = config.apply(doc, "<admin api>")
  applied = tonumber(file.generation) or gen
  if not ok then
    if not outage then
      ngx.log(ngx.ERR, "DB-less: the posted configuration did not load in ",
              "this worker: ", tostring(err))
      outage = true
    end
    return false
  end
  outage = false
  return true
end


--- Starts this worker's poller (every 0.25 s) and catches up at once with
-- a configuration posted before the worker started.
function _M.init_worker()
  local ok, err = pcall(_M.poll)
  if not ok then
    ngx.log(ngx.ERR, "DB-less poll failed: ", tostring(err))
  end
  local tok, terr = ngx.timer.every(POLL_INTERVAL, function(premature)
    if premature then
      return
    end
    local pok, perr = pcall(_M.poll)
    if not pok then
      ngx.log(ngx.ERR, "DB-less poll failed: ", tostring(perr))
    end
  end)
  if not tok then
    ngx.log(ngx.ERR, "DB-less: cannot start the configuration poller: ",
            tostring(terr))
  end
  return true
end


return _M
