-- +goose NO TRANSACTION
-- +goose Up
-- Key listings are paged newest first by (created_at, id), and keys
-- revoked or expired longer ago than the retention are deleted in the
-- background. The indexes are built CONCURRENTLY, so that writes go on
-- while they are, on a table of any size (hence no transaction: each
-- statement is its own). The new listing index makes the old one, without
-- the id, redundant.
CREATE INDEX CONCURRENTLY IF NOT EXISTS api_keys_user_page ON api_keys (user_id, created_at DESC, id DESC);
DROP INDEX CONCURRENTLY IF EXISTS api_keys_user_id_created_at;
CREATE INDEX CONCURRENTLY IF NOT EXISTS api_keys_revoked_at ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS api_keys_expires_at ON api_keys (expires_at) WHERE expires_at IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS api_keys_expires_at;
DROP INDEX CONCURRENTLY IF EXISTS api_keys_revoked_at;
CREATE INDEX CONCURRENTLY IF NOT EXISTS api_keys_user_id_created_at ON api_keys (user_id, created_at DESC);
DROP INDEX CONCURRENTLY IF EXISTS api_keys_user_page;
