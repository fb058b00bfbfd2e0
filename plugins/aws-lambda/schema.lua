-- Config of aws-lambda: Kong's fields, names and defaults (Kong 3.10's
-- `kong/plugins/aws-lambda/schema.lua`, plus the payload version of the
-- newer releases), and APISIX's way of reaching a function: `function_uri`
-- (an API Gateway stage or a Lambda function URL) with `authorization`
-- (`apikey` or `iam`). A config takes one of the two ways:
--
--   Kong:   function_name [+ qualifier, invocation_type, log_type, host,
--           port, disable_https, forward_request_*, awsgateway_compatible,
--           is_proxy_integration, aws_key/aws_secret, aws_assume_role_arn]
--   APISIX: function_uri [+ authorization.apikey | authorization.iam]
--
-- Shared: timeout, keepalive, proxy_url, ssl_verify, skip_large_bodies.
-- Sluice additions: ssl_verify (APISIX's name; Kong never verifies),
-- client_context (X-Amz-Client-Context), preserve_lambda_api_error_code
-- (the name of Kong's later releases).

local typedefs = require "kong.db.schema.typedefs"
local cjson = require "cjson.safe"


local type = type
local ipairs = ipairs
local ceil = math.ceil
local match = string.match
local lower = string.lower
local null = cjson.null


-- Lambda's limit for X-Amz-Client-Context, after base64
local CLIENT_CONTEXT_MAX = 3583


local function is_set(v)
  return v ~= nil and v ~= null
end


local function validate_client_context(value)
  local t = cjson.decode(value)
  if type(t) ~= "table" or match(value, "^%s*%[") then
    return nil, "must be a JSON object"
  end
  if 4 * ceil(#value / 3) > CLIENT_CONTEXT_MAX then
    return nil, "must be at most " .. CLIENT_CONTEXT_MAX
                .. " bytes once base64-encoded"
  end
  return true
end


local function validate_function_uri(value)
  local scheme = match(value, "^(%a[%w+.-]*)://")
  scheme = scheme and lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then
    return nil, "function_uri scheme must be http or https"
  end
  return true
end


local function boolean(default, description)
  return { type = "boolean", required = true, default = default,
           description = description }
end


-- fields that only make sense with the Invoke API (Kong's way)
local INVOKE_ONLY = {
  "function_name", "qualifier", "host", "unhandled_status", "aws_key",
  "aws_secret", "aws_assume_role_arn", "client_context",
}
local INVOKE_ONLY_TRUE = {
  "forward_request_method", "forward_request_uri", "forward_request_headers",
  "forward_request_body", "is_proxy_integration", "awsgateway_compatible",
  "preserve_lambda_api_error_code",
}


local function check_function_uri(entity)
  local c = entity.config
  if not is_set(c.function_uri) then
    return true
  end
  for _, name in ipairs(INVOKE_ONLY) do
    if is_set(c[name]) then
      return nil, "function_uri and " .. name .. " cannot be used together"
    end
  end
  for _, name in ipairs(INVOKE_ONLY_TRUE) do
    if c[name] == true then
      return nil, "function_uri and " .. name .. " cannot be used together"
    end
  end
  if c.invocation_type ~= nil and c.invocation_type ~= "RequestResponse" then
    return nil, "function_uri and invocation_type " .. c.invocation_type
                .. " cannot be used together"
  end
  return true
end


-- authorization (possibly filled with nulls as a record default) counts
-- when it names apikey or iam
local function check_authorization(entity)
  local c = entity.config
  local auth = c.authorization
  if type(auth) ~= "table"
     or not is_set(auth.apikey) and not is_set(auth.iam)
  then
    return true
  end
  if not is_set(c.function_uri) then
    return nil, "authorization requires function_uri"
  end
  return true
end


local function check_proxy_url(entity)
  local url = entity.config.proxy_url
  if type(url) == "string" then
    local scheme = match(url, "^([^:]+)://")
    if scheme and lower(scheme) ~= "http" then
      return nil, "proxy_url scheme must be http"
    end
  end
  return true
end


return {
  name = "aws-lambda",
  fields = {
    { protocols = typedefs.protocols_http },
    { config = {
        type = "record",
        fields = {
          { timeout = {
              type = "number", required = true, default = 60000,
              gt = 0,
              description = "Milliseconds the whole call may take "
                            .. "(connect, send, wait, read); then 504.",
          } },
          { keepalive = {
              type = "number", required = true, default = 60000,
              description = "Milliseconds an idle pooled connection to "
                            .. "the function platform is kept.",
          } },
          { aws_key = {
              type = "string", encrypted = true, referenceable = true,
              description = "Access key id; else the credential chain.",
          } },
          { aws_secret = {
              type = "string", encrypted = true, referenceable = true,
              description = "Secret access key, with aws_key.",
          } },
          { aws_assume_role_arn = {
              type = "string", encrypted = true, referenceable = true,
              description = "Role assumed through STS AssumeRole with the "
                            .. "base credentials.",
          } },
          { aws_role_session_name = {
              type = "string", default = "kong",
              description = "RoleSessionName of the AssumeRole call.",
          } },
          { aws_sts_endpoint_url = typedefs.url {
              description = "STS endpoint (default "
                            .. "https://sts.<region>.amazonaws.com).",
          } },
          { aws_region = typedefs.host {
              description = "Region; else AWS_REGION, AWS_DEFAULT_REGION.",
          } },
          { function_name = {
              type = "string", required = false,
              description = "Name, ARN or partial ARN of the function.",
          } },
          { qualifier = {
              type = "string",
              description = "Version or alias (?Qualifier=).",
          } },
          { invocation_type = {
              type = "string", required = true, default = "RequestResponse",
              one_of = { "RequestResponse", "Event", "DryRun" },
          } },
          { log_type = {
              type = "string", required = true, default = "Tail",
              one_of = { "Tail", "None" },
          } },
          { host = typedefs.host {
              description = "Invoke endpoint host (default "
                            .. "lambda.<region>.amazonaws.com).",
          } },
          { port = typedefs.port { default = 443 } },
          { disable_https = boolean(false, "Call the endpoint over http.") },
          { unhandled_status = {
              type = "integer", between = { 100, 999 },
              description = "Status when X-Amz-Function-Error is Unhandled.",
          } },
          { forward_request_method = boolean(false) },
          { forward_request_uri = boolean(false) },
          { forward_request_headers = boolean(false) },
          { forward_request_body = boolean(false) },
          { is_proxy_integration = boolean(false,
              "Read the function's answer as an API Gateway proxy response.")
          },
          { awsgateway_compatible = boolean(false,
              "Send an API Gateway proxy event.") },
          { awsgateway_compatible_payload_version = {
              type = "string", required = true, default = "1.0",
              one_of = { "1.0", "2.0" },
          } },
          { proxy_url = typedefs.url {
              description = "Forward proxy (http) for Lambda and STS.",
          } },
          { skip_large_bodies = boolean(true,
              "Do not send bodies over client_body_buffer_size.") },
          { base64_encode_body = boolean(true) },
          { aws_imds_protocol_version = {
              type = "string", required = true, default = "v1",
              one_of = { "v1", "v2" },
          } },
          { empty_arrays_mode = {
              type = "string", required = true, default = "legacy",
              one_of = { "legacy", "correct" },
          } },
          -- Sluice additions
          { ssl_verify = boolean(true,
              "Verify the platform's certificate (lua_ssl_trusted_"
              .. "certificate).") },
          { client_context = {
              type = "string", custom_validator = validate_client_context,
              description = "JSON object sent base64'd as "
                            .. "X-Amz-Client-Context.",
          } },
          { preserve_lambda_api_error_code = boolean(false,
              "Answer a Lambda API error with its own status and body "
              .. "instead of 500.") },
          -- APISIX's way
          { function_uri = {
              type = "string", custom_validator = validate_function_uri,
              description = "URL of an API Gateway stage or a function "
                            .. "URL; the route's path suffix is appended.",
          } },
          { authorization = {
              type = "record", required = false,
              fields = {
                { apikey = {
                    type = "string", encrypted = true, referenceable = true,
                    description = "Sent as x-api-key.",
                } },
                { iam = {
                    type = "record", required = false,
                    fields = {
                      { accesskey = { type = "string", required = true,
                                      encrypted = true,
                                      referenceable = true } },
                      { secretkey = { type = "string", required = true,
                                      encrypted = true,
                                      referenceable = true } },
                      { aws_region = { type = "string", required = true,
                                       default = "us-east-1" } },
                      { service = { type = "string", required = true,
                                    default = "execute-api" } },
                    },
                } },
              },
          } },
        },
      },
    },
  },
  entity_checks = {
    { mutually_required = { "config.aws_key", "config.aws_secret" } },
    { custom_entity_check = {
        field_sources = { "config.proxy_url" },
        fn = check_proxy_url,
    } },
    { custom_entity_check = {
        field_sources = { "config.function_uri" },
        fn = check_function_uri,
    } },
    { custom_entity_check = {
        field_sources = { "config.authorization" },
        fn = check_authorization,
    } },
  },
}
