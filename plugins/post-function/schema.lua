-- Config of post-function: pre-function's schema factory, under its name.

return require "kong.plugins.pre-function._schema"("post-function")
