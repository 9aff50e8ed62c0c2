-- Uploaded template sources (tar archives), deduplicated per uploader by content hash.
CREATE TABLE files (
    id uuid PRIMARY KEY,
    hash text NOT NULL,
    created_by uuid NOT NULL REFERENCES users (id),
    mimetype text NOT NULL,
    data bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (created_by, hash)
);

-- The job queue. A job is pending until a provisioner claims it (started_at), then running
-- until it completes (completed_at, with error on failure). canceled_at asks the provisioner
-- to stop. heartbeat_at is the provisioner's last sign of life: the reaper fails running jobs
-- whose provisioner went silent.
CREATE TABLE provisioner_jobs (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    initiator_id uuid NOT NULL REFERENCES users (id),
    type text NOT NULL CHECK (type IN ('template_version_import', 'workspace_build')),
    input jsonb NOT NULL,
    file_id uuid NOT NULL REFERENCES files (id),
    -- A job goes only to a provisioner whose tags include all of these.
    tags jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    heartbeat_at timestamptz,
    canceled_at timestamptz,
    completed_at timestamptz,
    error text,
    worker_id uuid,
    worker_name text NOT NULL DEFAULT '',
    -- What the job produced (resources, variables, agent settings), as JSON.
    result jsonb
);
CREATE INDEX provisioner_jobs_pending ON provisioner_jobs (created_at)
    WHERE started_at IS NULL AND canceled_at IS NULL;
CREATE INDEX provisioner_jobs_running ON provisioner_jobs (heartbeat_at)
    WHERE started_at IS NOT NULL AND completed_at IS NULL;

CREATE TABLE provisioner_job_logs (
    id bigserial PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES provisioner_jobs (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    level text NOT NULL,
    stage text NOT NULL,
    output text NOT NULL
);
CREATE INDEX provisioner_job_logs_job ON provisioner_job_logs (job_id, id);

CREATE TABLE templates (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    icon text NOT NULL DEFAULT '',
    active_version_id uuid NOT NULL,
    created_by uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX templates_name ON templates (organization_id, lower(name)) WHERE NOT deleted;

CREATE TABLE template_versions (
    id uuid PRIMARY KEY,
    template_id uuid REFERENCES templates (id),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name text NOT NULL,
    message text NOT NULL DEFAULT '',
    job_id uuid NOT NULL REFERENCES provisioner_jobs (id),
    created_by uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX template_versions_template ON template_versions (template_id, created_at);
CREATE UNIQUE INDEX template_versions_name ON template_versions (template_id, lower(name))
    WHERE template_id IS NOT NULL;
ALTER TABLE templates ADD CONSTRAINT templates_active_version
    FOREIGN KEY (active_version_id) REFERENCES template_versions (id);
