CREATE TABLE workspaces (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    owner_id uuid NOT NULL REFERENCES users (id),
    template_id uuid NOT NULL REFERENCES templates (id),
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX workspaces_owner_name ON workspaces (owner_id, lower(name)) WHERE NOT deleted;

-- Each build is one provisioner job. The Terraform state lives here between builds; the
-- agent token is minted when a provisioner claims the job, and only its hash is kept.
CREATE TABLE workspace_builds (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id),
    template_version_id uuid NOT NULL REFERENCES template_versions (id),
    build_number integer NOT NULL,
    transition text NOT NULL CHECK (transition IN ('start', 'stop', 'delete')),
    initiator_id uuid NOT NULL REFERENCES users (id),
    job_id uuid NOT NULL REFERENCES provisioner_jobs (id),
    parameters jsonb NOT NULL DEFAULT '{}',
    provisioner_state bytea,
    agent_token_hash bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, build_number)
);
CREATE UNIQUE INDEX workspace_builds_job ON workspace_builds (job_id);
