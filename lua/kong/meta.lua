-- The Kong version Sluice is compatible with, as Kong's `kong.meta`:
-- plugins take their VERSION from `version`, Server/Via headers use
-- `_SERVER_TOKENS`.

local version = setmetatable({
  major = 3,
  minor = 10,
  patch = 0,
  -- suffix = "-dev",
}, {
  __tostring = function(t)
    return string.format("%d.%d.%d%s", t.major, t.minor, t.patch,
                         t.suffix or "")
  end,
})


return {
  _NAME = "kong",
  _VERSION = tostring(version),
  _VERSION_TABLE = version,
  _SERVER_TOKENS = "kong/" .. tostring(version),
  -- one version string for every edition
  version = tostring(version),
}
