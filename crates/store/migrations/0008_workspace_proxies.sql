-- Workspace proxies: regional relays and app proxies that run without a database and
-- authenticate with a token `ID:SECRET` whose secret only the sha256 of is kept here.
CREATE TABLE workspace_proxies (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    display_name text NOT NULL,
    icon text NOT NULL DEFAULT '',
    -- Empty until the proxy registers ("unregistered").
    url text NOT NULL DEFAULT '',
    wildcard_hostname text NOT NULL DEFAULT '',
    derp_enabled boolean NOT NULL DEFAULT true,
    derp_only boolean NOT NULL DEFAULT false,
    -- Offset of the proxy's relay region above the base map's region IDs.
    region_id serial NOT NULL,
    token_hashed_secret bytea NOT NULL,
    version text NOT NULL DEFAULT '',
    -- The running instance, while one is registered: one per token.
    replica_id uuid,
    replica_hostname text NOT NULL DEFAULT '',
    registered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted boolean NOT NULL DEFAULT false
);

-- Names are unique among live proxies, whatever their case.
CREATE UNIQUE INDEX workspace_proxies_lower_name ON workspace_proxies (lower(name)) WHERE NOT deleted;
