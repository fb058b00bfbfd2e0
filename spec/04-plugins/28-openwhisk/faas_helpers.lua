-- Moved to spec/internal/faas_plugins.lua (shared by 27-aws-lambda,
-- 28-openwhisk, 29-openfaas and 30-azure-functions); this name stays for
-- specs that still require it.

return require "spec.internal.faas_plugins"
