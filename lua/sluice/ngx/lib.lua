-- Finds the C libraries the ngx shim calls through the FFI.
--
-- Inside the gateway the binary is linked against libpcre2-8 and libcrypto,
-- so their symbols resolve through `ffi.C`. Under plain `luajit` (the busted
-- specs, `exec x.lua` tools) they do not, and the shared object is loaded
-- with `ffi.load`. Callers declare their prototypes with `ffi.cdef` first and
-- then ask for a namespace by library name and a symbol that must resolve.

local ffi = require "ffi"


local C = ffi.C
local ffi_load = ffi.load
local pcall = pcall
local error = error
local type = type
local ipairs = ipairs
local tostring = tostring
local concat = table.concat


-- name -> candidate shared objects for ffi.load, tried in order
local CANDIDATES = {
  ["pcre2-8"] = { "pcre2-8", "libpcre2-8.so.0" },
  crypto = { "crypto", "libcrypto.so.3", "libcrypto.so" },
}


local _M = {}


local loaded = {}


local function resolves(ns, symbol)
  local ok, v = pcall(function() return ns[symbol] end)
  return ok and v ~= nil
end


--- Namespace holding `symbol` for library `name`: `ffi.C` when the running
-- binary exports it, otherwise the result of `ffi.load`. Cached per name.
-- Raises when the library cannot be found at all.
function _M.load(name, symbol)
  if type(name) ~= "string" or type(symbol) ~= "string" then
    error("name and symbol must be strings", 2)
  end

  local ns = loaded[name]
  if ns then
    return ns
  end

  if resolves(C, symbol) then
    loaded[name] = C
    return C
  end

  local errs = {}
  for _, so in ipairs(CANDIDATES[name] or { name }) do
    local ok, lib = pcall(ffi_load, so)
    if ok and resolves(lib, symbol) then
      loaded[name] = lib
      return lib
    end
    errs[#errs + 1] = ok and ("no symbol " .. symbol .. " in " .. so)
                      or tostring(lib)
  end

  error("cannot load library '" .. name .. "': " .. concat(errs, "; "),
        2)
end


--- True when `name` was resolved through the running binary (ffi.C).
function _M.is_builtin(name)
  return loaded[name] == C
end


return _M
