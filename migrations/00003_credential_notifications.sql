-- +goose Up
-- Every change that can take away what a cached credential grants is
-- announced on the channel authapi_credentials, so that every instance can
-- drop what it cached within milliseconds. Triggers rather than the
-- application send them, so that changes made by an operator in SQL are
-- announced too. NOTIFY is transactional: listeners hear of a change when it
-- commits, never before, and never of a rolled-back one.
--
-- Payloads: 'key:<hex digest>' for one API key, 'user:<uuid>' for
-- everything of one user, 'all' for everything (TRUNCATE).
-- +goose StatementBegin
CREATE FUNCTION authapi_notify_credentials() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('authapi_credentials', 'all');
    ELSIF TG_TABLE_NAME = 'api_keys' THEN
        PERFORM pg_notify('authapi_credentials', 'key:' || encode(OLD.digest, 'hex'));
    ELSE
        PERFORM pg_notify('authapi_credentials', 'user:' || OLD.id::text);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- A revocation, or a change of the digest or the owner. A column added
-- later that limits what a key grants (an expiry) belongs in this list; one
-- that only records use (a last-used time) does not, or every use would be
-- broadcast.
CREATE TRIGGER api_keys_notify_update
    AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.digest IS DISTINCT FROM NEW.digest
          OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION authapi_notify_credentials();
-- A deleted key, including those a deleted user takes along (ON DELETE
-- CASCADE fires row triggers on api_keys too).
CREATE TRIGGER api_keys_notify_delete
    AFTER DELETE ON api_keys FOR EACH ROW
    EXECUTE FUNCTION authapi_notify_credentials();
CREATE TRIGGER api_keys_notify_truncate
    AFTER TRUNCATE ON api_keys FOR EACH STATEMENT
    EXECUTE FUNCTION authapi_notify_credentials();

-- A deleted user (JWTs must stop working), or a changed profile (what
-- GET /v1/me returns from the cache).
CREATE TRIGGER users_notify_update
    AFTER UPDATE ON users FOR EACH ROW
    WHEN (OLD.username IS DISTINCT FROM NEW.username
          OR OLD.email IS DISTINCT FROM NEW.email
          OR OLD.full_name IS DISTINCT FROM NEW.full_name)
    EXECUTE FUNCTION authapi_notify_credentials();
CREATE TRIGGER users_notify_delete
    AFTER DELETE ON users FOR EACH ROW
    EXECUTE FUNCTION authapi_notify_credentials();
CREATE TRIGGER users_notify_truncate
    AFTER TRUNCATE ON users FOR EACH STATEMENT
    EXECUTE FUNCTION authapi_notify_credentials();

-- +goose Down
DROP TRIGGER users_notify_truncate ON users;
DROP TRIGGER users_notify_delete ON users;
DROP TRIGGER users_notify_update ON users;
DROP TRIGGER api_keys_notify_truncate ON api_keys;
DROP TRIGGER api_keys_notify_delete ON api_keys;
DROP TRIGGER api_keys_notify_update ON api_keys;
DROP FUNCTION authapi_notify_credentials();
