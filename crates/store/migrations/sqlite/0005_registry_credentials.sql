-- Credentials for private registries, per repository and host (`gantry registry add`): builds
-- pull, build `FROM` and push with them. The password is sealed by the store (AES-256-GCM, bound
-- to the repository and the host), never kept in clear.
CREATE TABLE registry_credentials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    password BLOB NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    UNIQUE (repo_id, host)
);
