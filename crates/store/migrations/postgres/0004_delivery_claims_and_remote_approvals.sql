-- A webhook delivery is claimed before its build starts and completed once the build exists (or
-- the delivery was answered without one). A start that fails gives the claim up, so the forge's
-- redelivery is taken; a claim never completed (its server stopped) goes stale and is taken over.
ALTER TABLE deliveries ADD COLUMN completed BIGINT;
UPDATE deliveries SET completed = created;

-- The clone URL a server administrator last set on a repository: only that URL may be read from
-- the server's disk (a path, file://) or through a remote helper, and only it is exempt from the
-- egress rules for non-admins.
CREATE TABLE remote_approvals (
    repo_id BIGINT PRIMARY KEY REFERENCES repos (id) ON DELETE CASCADE,
    clone_url TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    created BIGINT NOT NULL
);
