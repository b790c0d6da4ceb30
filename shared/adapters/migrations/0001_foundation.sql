-- Tenants, API keys, the model registry and its audit trail.

CREATE TABLE tenants (
    tenant_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (tenant_id),
    role         text NOT NULL CHECK (role IN ('client', 'staff', 'service')),
    -- SHA-256 of the whole key: the key itself is never stored.
    key_hash     bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    -- The first characters, so a person can tell keys apart in a listing.
    key_prefix   text NOT NULL,
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE model_versions (
    version_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{1,40}$'),
    -- NULL: a global model; otherwise the one tenant it belongs to.
    tenant_id        uuid REFERENCES tenants (tenant_id),
    version          integer NOT NULL CHECK (version > 0),
    status           text NOT NULL CHECK (status IN ('candidate', 'active', 'retired')),
    artifact_key     text NOT NULL,
    artifact_format  text NOT NULL,
    artifact_sha256  text NOT NULL CHECK (artifact_sha256 ~ '^[0-9a-f]{64}$'),
    artifact_hmac    text NOT NULL CHECK (artifact_hmac ~ '^[0-9a-f]{64}$'),
    manifest         jsonb NOT NULL,
    -- A candidate may serve a share of traffic as the challenger of the active version.
    challenger_share double precision CHECK (challenger_share > 0 AND challenger_share < 1),
    -- The version this one replaced when it was activated: what a rollback goes back to.
    replaced_version_id uuid REFERENCES model_versions (version_id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    activated_at     timestamptz,
    retired_at       timestamptz,
    CHECK (challenger_share IS NULL OR status = 'candidate')
);
-- The scope key folds NULL (global) into one value so uniqueness holds for global models too.
CREATE UNIQUE INDEX model_versions_number
    ON model_versions (kind, COALESCE(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid), version);
-- Exactly one active version per kind and scope: the database enforces "at most", activation
-- in one transaction gives "at least".
CREATE UNIQUE INDEX model_versions_one_active
    ON model_versions (kind, COALESCE(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid))
    WHERE status = 'active';
CREATE UNIQUE INDEX model_versions_one_challenger
    ON model_versions (kind, COALESCE(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid))
    WHERE challenger_share IS NOT NULL;

CREATE TABLE registry_audit (
    audit_id    bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text NOT NULL,
    action      text NOT NULL,
    kind        text,
    tenant_id   uuid,
    version_id  uuid,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX registry_audit_version ON registry_audit (version_id);
