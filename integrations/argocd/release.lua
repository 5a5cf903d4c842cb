-- Argo CD health of a tuskfish Release (resource.customizations.health.tuskfish.dev_Release).
-- Healthy: its version runs healthy (a newer one may wait: the message says for what).
-- Suspended: nothing runs yet because a gate holds it on purpose (approval, freeze, release window).
-- Degraded: the rollout failed or the spec cannot be acted on. Progressing: anything else.
local hs = {}
local status = obj.status
if status == nil or status.observedGeneration == nil or obj.metadata.generation == nil
    or status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "waiting for the tuskfish operator to observe the change"
  return hs
end
local function condition(t)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == t then return c end
  end
  return nil
end
local ready = condition("Ready")
local held = condition("Held")
hs.message = ready and ready.message or ""
local phase = status.phase
if phase == "Healthy" then
  hs.status = "Healthy"
  if held ~= nil and held.status == "True" then
    hs.message = "runs " .. (status.currentVersion or "?") .. "; " .. held.reason .. ": " .. held.message
  else
    hs.message = "runs " .. (status.currentVersion or "?")
  end
elseif phase == "Degraded" or phase == "Failed" then
  hs.status = "Degraded"
elseif phase == "Pending" and ready ~= nil and (ready.reason == "AwaitingApproval"
    or ready.reason == "Frozen" or ready.reason == "OutsideAllowWindow" or ready.reason == "Rejected") then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
return hs
