-- A repository's forge API address, for self-hosted forges whose API is not where the clone URL
-- suggests (and for tests against a local double of a forge).
ALTER TABLE repos ADD COLUMN forge_api_url TEXT;
