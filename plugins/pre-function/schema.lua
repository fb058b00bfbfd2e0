-- Config of pre-function: see _schema.lua, shared with post-function.

return require "kong.plugins.pre-function._schema"("pre-function")
