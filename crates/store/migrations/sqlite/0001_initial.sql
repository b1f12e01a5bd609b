-- Gantry's schema on SQLite. Times are Unix milliseconds; flags are 0/1 integers and lists or
-- maps are JSON text, so that the same queries run on both databases through sqlx's `Any` driver.
-- Keep migrations/postgres/0001_initial.sql in step with this file.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    login TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin INTEGER NOT NULL CHECK (admin IN (0, 1)),
    created INTEGER NOT NULL
);

CREATE TABLE tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    expires INTEGER,
    created INTEGER NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_id);

CREATE TABLE repos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    full_name TEXT NOT NULL UNIQUE,
    clone_url TEXT NOT NULL,
    forge TEXT NOT NULL,
    default_branch TEXT NOT NULL,
    config_path TEXT NOT NULL,
    webhook_secret TEXT NOT NULL,
    trust_privileged INTEGER NOT NULL CHECK (trust_privileged IN (0, 1)),
    trust_volumes INTEGER NOT NULL CHECK (trust_volumes IN (0, 1)),
    trust_network INTEGER NOT NULL CHECK (trust_network IN (0, 1)),
    timeout_minutes INTEGER NOT NULL,
    cancel_previous INTEGER NOT NULL CHECK (cancel_previous IN (0, 1)),
    poll_interval_seconds INTEGER,
    lost_policy TEXT NOT NULL,
    forge_token TEXT,
    clone_username TEXT,
    clone_password TEXT,
    -- The number of the newest build: incremented inside create_build's transaction, which
    -- makes that transaction take the write lock first.
    last_build_number INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL
);

CREATE TABLE members (
    repo_id INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (repo_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE secrets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    events TEXT NOT NULL,
    images TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    UNIQUE (repo_id, name)
);

CREATE TABLE agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    labels TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    version TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    created INTEGER NOT NULL
);

CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    reference TEXT NOT NULL,
    branch TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    message TEXT NOT NULL,
    author TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    pull_request TEXT,
    reason TEXT,
    diagnostics TEXT NOT NULL,
    variables TEXT NOT NULL,
    from_fork INTEGER NOT NULL CHECK (from_fork IN (0, 1)),
    created INTEGER NOT NULL,
    started INTEGER,
    finished INTEGER,
    UNIQUE (repo_id, number)
);
CREATE INDEX builds_branch ON builds (repo_id, branch, state);
CREATE INDEX builds_state ON builds (state);

CREATE TABLE workflows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    depends_on TEXT NOT NULL,
    labels TEXT NOT NULL,
    plan TEXT NOT NULL,
    agent_id INTEGER REFERENCES agents (id) ON DELETE SET NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    attempts INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    started INTEGER,
    finished INTEGER
);
CREATE INDEX workflows_build ON workflows (build_id);
CREATE INDEX workflows_state ON workflows (state, id);
CREATE INDEX workflows_agent ON workflows (agent_id);

CREATE TABLE steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id INTEGER NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    exit_code INTEGER,
    reason TEXT,
    started INTEGER,
    finished INTEGER,
    log_lines INTEGER NOT NULL DEFAULT 0,
    -- Set once retention removed the step's log files.
    logs_removed INTEGER NOT NULL DEFAULT 0 CHECK (logs_removed IN (0, 1)),
    UNIQUE (workflow_id, position)
);
CREATE INDEX steps_retention ON steps (logs_removed, finished);

CREATE TABLE deliveries (
    repo_id INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (repo_id, delivery_id)
);
CREATE INDEX deliveries_created ON deliveries (created);

CREATE TABLE polled_refs (
    repo_id INTEGER PRIMARY KEY REFERENCES repos (id) ON DELETE CASCADE,
    refs TEXT NOT NULL,
    updated INTEGER NOT NULL
);

CREATE TABLE crons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    schedule TEXT NOT NULL,
    branch TEXT NOT NULL,
    next_run INTEGER NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (repo_id, name)
);
CREATE INDEX crons_next_run ON crons (next_run);

CREATE TABLE notifiers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    states TEXT NOT NULL
);
CREATE INDEX notifiers_repo ON notifiers (repo_id);
