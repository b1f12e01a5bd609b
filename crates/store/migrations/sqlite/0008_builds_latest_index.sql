-- The newest build of a branch (the dashboard's cards, badges) is a seek to the branch's end.
CREATE INDEX builds_latest ON builds (repo_id, branch, id);
