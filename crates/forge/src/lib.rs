//! Forges and git remotes: webhooks, commit statuses, and git (polling, reading files at a commit).
