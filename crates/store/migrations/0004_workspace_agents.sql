-- The agent of a started build, created when the build succeeds. It authenticates with the
-- build's agent token (only its hash is stored).
CREATE TABLE workspace_agents (
    id uuid PRIMARY KEY,
    build_id uuid NOT NULL UNIQUE REFERENCES workspace_builds (id),
    name text NOT NULL DEFAULT 'main',
    auth_token_hash bytea NOT NULL UNIQUE,
    -- The template's settings for it (AgentSettings as JSON).
    settings jsonb NOT NULL,
    lifecycle_state text NOT NULL DEFAULT 'created',
    version text NOT NULL DEFAULT '',
    first_connected_at timestamptz,
    last_connected_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspace_agent_logs (
    id bigserial PRIMARY KEY,
    agent_id uuid NOT NULL REFERENCES workspace_agents (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    source text NOT NULL,
    level text NOT NULL,
    output text NOT NULL
);
CREATE INDEX workspace_agent_logs_agent ON workspace_agent_logs (agent_id, id);
