-- What builds published: one row per workflow, step and image repository, all of its tags
-- pointing at one manifest digest. The digest index answers "which build produced this image".
CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    workflow_id INTEGER NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tags TEXT NOT NULL,
    size INTEGER,
    provenance TEXT,
    provenance_digest TEXT,
    created INTEGER NOT NULL,
    UNIQUE (workflow_id, step, repository)
);
CREATE INDEX artifacts_build ON artifacts (build_id);
CREATE INDEX artifacts_digest ON artifacts (digest);

-- Notifiers learn which events they are sent (a build finished, an image was published: the
-- delivery webhooks a deployer listens to) and may sign their bodies with a sealed secret.
ALTER TABLE notifiers ADD COLUMN events TEXT NOT NULL DEFAULT '["build.finished"]';
ALTER TABLE notifiers ADD COLUMN secret_ciphertext BLOB;
