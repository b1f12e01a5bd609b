-- Promotion rules as the environment's deployer last sent them (JSON), with the environment
-- repository's commit they were read at.
ALTER TABLE environments ADD COLUMN promotion_rules TEXT;
ALTER TABLE environments ADD COLUMN rules_revision TEXT;
ALTER TABLE environments ADD COLUMN last_sync INTEGER;

-- Requests to run in an environment the image another one runs. People are kept by login
-- (users are never deleted), the rules as they were when it was asked (JSON). Times in ms.
CREATE TABLE promotions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    app TEXT NOT NULL,
    from_environment TEXT NOT NULL,
    image TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    comment TEXT,
    requested_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    approvals_required INTEGER NOT NULL,
    rules TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    reason TEXT,
    commit_sha TEXT,
    branch TEXT
);
CREATE INDEX promotions_environment ON promotions (environment_id, state, id);
CREATE INDEX promotions_expiry ON promotions (state, expires_at);

-- Each person's one approval or rejection of a promotion.
CREATE TABLE promotion_decisions (
    promotion_id INTEGER NOT NULL REFERENCES promotions (id) ON DELETE CASCADE,
    login TEXT NOT NULL,
    approved INTEGER NOT NULL CHECK (approved IN (0, 1)),
    comment TEXT,
    decided_at INTEGER NOT NULL,
    PRIMARY KEY (promotion_id, login)
);
