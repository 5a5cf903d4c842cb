-- Argo CD health of a tuskfish Environment (resource.customizations.health.tuskfish.dev_Environment).
-- Healthy once its namespace is set up and owned; Degraded when it cannot be (owned by something
-- else, unmanaged, a name too long); Progressing while the operator sets it up.
local hs = {}
local status = obj.status
if status == nil or status.observedGeneration == nil or obj.metadata.generation == nil
    or status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "waiting for the tuskfish operator to observe the change"
  return hs
end
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Ready" then
    hs.message = c.message
    if c.status == "True" then
      hs.status = "Healthy"
      hs.message = (status.healthyReleases or 0) .. " of " .. (status.releases or 0) .. " Releases healthy"
    elseif c.reason == "NamespaceOwnedByOther" or c.reason == "NamespaceNotManaged" or c.reason == "InvalidName" then
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
