-- Installs Sluice's Lua tree (the runtime's Lua side) with `luarocks make`, so tools
-- and specs outside the checkout can require it. The gateway itself is built with make.
package = "sluice"
version = "0.1.0-1"
source = {
  url = "git+file:///dev/null",
}
description = {
  summary = "Lua side of Sluice, a Kong-compatible API gateway runtime in C",
  license = "Apache-2.0",
}
dependencies = {
  "lua >= 5.1",
}
build = {
  type = "builtin",
  modules = {
    ["sluice.declarative"] = "lua/sluice/declarative/init.lua",
    ["sluice.schema.validate"] = "lua/sluice/schema/validate.lua",
    ["sluice.schema.entities.services"] = "lua/sluice/schema/entities/services.lua",
    ["sluice.schema.entities.routes"] = "lua/sluice/schema/entities/routes.lua",
    ["sluice.schema.entities.consumers"] = "lua/sluice/schema/entities/consumers.lua",
    ["sluice.schema.entities.plugins"] = "lua/sluice/schema/entities/plugins.lua",
    ["sluice.uuid"] = "lua/sluice/uuid.lua",
    ["resty.http"] = "lua/resty/http.lua",
    ["resty.http_headers"] = "lua/resty/http_headers.lua",
    ["resty.http_connect"] = "lua/resty/http_connect.lua",
    ["kong.plugins.openwhisk.handler"] = "plugins/openwhisk/handler.lua",
    ["kong.plugins.openwhisk.schema"] = "plugins/openwhisk/schema.lua",
    ["kong.plugins.openwhisk.params"] = "plugins/openwhisk/params.lua",
    ["kong.plugins.openfaas.handler"] = "plugins/openfaas/handler.lua",
    ["kong.plugins.openfaas.schema"] = "plugins/openfaas/schema.lua",
    ["kong.plugins.azure-functions.handler"] = "plugins/azure-functions/handler.lua",
    ["kong.plugins.azure-functions.schema"] = "plugins/azure-functions/schema.lua",
    ["kong.plugins.azure-functions._upstream"] = "plugins/azure-functions/_upstream.lua",
    ["kong.plugins.aws-lambda.handler"] = "plugins/aws-lambda/handler.lua",
    ["kong.plugins.aws-lambda.schema"] = "plugins/aws-lambda/schema.lua",
    ["kong.plugins.aws-lambda.request-util"] = "plugins/aws-lambda/request-util.lua",
    ["kong.plugins.aws-lambda.apigw"] = "plugins/aws-lambda/apigw.lua",
    ["kong.plugins.aws-lambda.credentials"] = "plugins/aws-lambda/credentials.lua",
    ["kong.plugins.aws-lambda.function-uri"] = "plugins/aws-lambda/function-uri.lua",
    ["kong.plugins.aws-lambda.util"] = "plugins/aws-lambda/util.lua",
  },
}
