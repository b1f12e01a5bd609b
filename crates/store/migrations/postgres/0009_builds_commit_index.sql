-- A changelog asks for the builds of each commit between two versions.
CREATE INDEX builds_commit ON builds (repo_id, commit_sha);
