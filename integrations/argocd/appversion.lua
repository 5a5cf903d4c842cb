-- Argo CD health of a tuskfish AppVersion (resource.customizations.health.tuskfish.dev_AppVersion).
-- Healthy once published (deployable); Degraded when it never will be (invalid, nothing to deploy,
-- a duplicate, edited after publishing); Progressing until the operator has looked.
local hs = {}
local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the tuskfish operator to publish it"
  return hs
end
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Ready" then
    hs.message = c.message
    if c.status == "True" then
      hs.status = "Healthy"
    elseif c.reason == "InvalidVersion" or c.reason == "NothingToDeploy" or c.reason == "DuplicateVersion"
        or c.reason == "SpecModifiedAfterPublish" then
      hs.status = "Degraded"
    else
      hs.status = "Progressing"
    end
    return hs
  end
end
hs.status = "Progressing"
hs.message = "no Ready condition yet"
return hs
