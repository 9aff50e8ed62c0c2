-- Deployment-wide facts written once.
CREATE TABLE site_configs (
    key text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO site_configs (key, value) VALUES ('deployment_id', gen_random_uuid()::text);

CREATE TABLE organizations (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    display_name text NOT NULL,
    description text NOT NULL DEFAULT '',
    icon text NOT NULL DEFAULT '',
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX organizations_name_lower ON organizations (lower(name));
-- At most one default organization.
CREATE UNIQUE INDEX organizations_single_default ON organizations (is_default) WHERE is_default;
INSERT INTO organizations (id, name, display_name, description, is_default)
VALUES (gen_random_uuid(), 'coder', 'Coder', 'The default organization.', true);

CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    username text NOT NULL,
    name text NOT NULL DEFAULT '',
    -- A PHC string (argon2id); NULL for users who cannot log in with a password.
    hashed_password text,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    login_type text NOT NULL CHECK (login_type IN ('password', 'none')),
    -- Deployment-wide roles beyond the implicit 'member'.
    rbac_roles text[] NOT NULL DEFAULT '{}',
    avatar_url text NOT NULL DEFAULT '',
    deleted boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email)) WHERE NOT deleted;
CREATE UNIQUE INDEX users_username_lower ON users (lower(username)) WHERE NOT deleted;

CREATE TABLE organization_members (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    roles text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id)
);

-- Session tokens are `id-secret`; only sha256(secret) is stored.
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    hashed_secret bytea NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    login_type text NOT NULL CHECK (login_type IN ('password', 'token')),
    scope text NOT NULL DEFAULT 'all',
    token_name text NOT NULL DEFAULT '',
    lifetime_seconds bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    last_used timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE UNIQUE INDEX api_keys_token_name ON api_keys (user_id, lower(token_name))
    WHERE login_type = 'token';
