-- Environments whose deployers report to this server (`gantry deployer --notify`). Each keeps
-- only the secret its deployer signs events with, sealed: the server never holds a credential
-- of the environment itself.
CREATE TABLE environments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    secret BLOB NOT NULL,
    created INTEGER NOT NULL,
    last_event INTEGER
);

-- Deployments as deployers reported them: one row per environment and deployment id, written
-- when it starts (outcome `running`) and brought to its final outcome once. Times in ms.
CREATE TABLE deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    deployment_id TEXT NOT NULL,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_image TEXT,
    to_image TEXT,
    from_revision TEXT,
    revision TEXT NOT NULL,
    author TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    outcome TEXT NOT NULL,
    reason TEXT,
    owner_team TEXT,
    rolled_back INTEGER NOT NULL DEFAULT 0 CHECK (rolled_back IN (0, 1)),
    received_at INTEGER NOT NULL,
    UNIQUE (environment_id, deployment_id)
);
CREATE INDEX deployments_app ON deployments (environment_id, app, started_at);

-- Drift a deployer reported (`drift.detected`): what differs from the repository, as a JSON list.
CREATE TABLE drift_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    app TEXT NOT NULL,
    owner_team TEXT,
    drift TEXT NOT NULL,
    received INTEGER NOT NULL
);
CREATE INDEX drift_events_app ON drift_events (environment_id, app, id);
