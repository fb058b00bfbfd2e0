-- pre-function: runs the Lua of its config first in each phase (Kong's
-- PRIORITY 1000000). The work is in _handler.lua, shared with
-- post-function.

return require "kong.plugins.pre-function._handler"(1000000)
