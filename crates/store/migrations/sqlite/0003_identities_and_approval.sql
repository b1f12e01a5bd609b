-- Agents hold a token of their own (only its SHA-256 is kept): the shared agent secret only
-- registers. Builds of forks may wait for a maintainer's approval, and record who gave it.
-- Keep migrations/postgres/0003_identities_and_approval.sql in step with this file.

ALTER TABLE agents ADD COLUMN token_hash TEXT;
CREATE UNIQUE INDEX agents_token_hash ON agents (token_hash);

-- `none`, `forks`, `pull_requests` or `all_events` (as Woodpecker names them): which builds wait for approval before they are queued.
ALTER TABLE repos ADD COLUMN approval TEXT NOT NULL DEFAULT 'forks';

ALTER TABLE builds ADD COLUMN approved_by TEXT;
ALTER TABLE builds ADD COLUMN approved_at INTEGER;
