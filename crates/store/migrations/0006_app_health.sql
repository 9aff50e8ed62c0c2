-- The agent's latest word on each app's health, by slug: disabled, initializing, healthy or
-- unhealthy.
ALTER TABLE workspace_agents ADD COLUMN app_health jsonb NOT NULL DEFAULT '{}';
