-- post-function: runs the Lua of its config last in each phase (Kong's
-- PRIORITY -1000), through pre-function's handler factory.

return require "kong.plugins.pre-function._handler"(-1000)
