-- What the agent last reported about the tunnels users hold to it.
ALTER TABLE workspace_agents
    ADD COLUMN connection_count integer NOT NULL DEFAULT 0,
    ADD COLUMN last_connection_path text NOT NULL DEFAULT '',
    ADD COLUMN last_connection_at timestamptz;
