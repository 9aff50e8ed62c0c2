-- Bytes through the agent's tunnels since it started (as it last reported).
ALTER TABLE workspace_agents
    ADD COLUMN rx_bytes bigint NOT NULL DEFAULT 0,
    ADD COLUMN tx_bytes bigint NOT NULL DEFAULT 0;
