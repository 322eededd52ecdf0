-- +goose Up
-- Instances also cache each user's key listing (GET /v1/auth/api-keys), so
-- every change to a key row is now announced, not only those that limit
-- what a key grants: a new key, a new name, a recorded use. Each payload
-- names the owner, whose listing changed:
--
--   'key:<hex digest>:<owner uuid>'  the key's grant changed (revoked,
--                                    expiry, scopes, digest, owner,
--                                    deleted): drop it and the listing;
--   'keys:<owner uuid>'              only the owner's listing changed.
--
-- A last-used time is written at most once a minute per key, so announcing
-- it costs little. 'user:<uuid>' and 'all' stay as 00003 made them.
-- +goose StatementBegin
CREATE FUNCTION authapi_notify_keys() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('authapi_credentials', 'keys:' || NEW.user_id::text);
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF OLD.revoked_at IS NOT DISTINCT FROM NEW.revoked_at
           AND OLD.digest IS NOT DISTINCT FROM NEW.digest
           AND OLD.user_id IS NOT DISTINCT FROM NEW.user_id
           AND OLD.expires_at IS NOT DISTINCT FROM NEW.expires_at
           AND OLD.scopes IS NOT DISTINCT FROM NEW.scopes THEN
            PERFORM pg_notify('authapi_credentials', 'keys:' || NEW.user_id::text);
            RETURN NULL;
        END IF;
        IF OLD.user_id IS DISTINCT FROM NEW.user_id THEN
            PERFORM pg_notify('authapi_credentials', 'keys:' || NEW.user_id::text);
        END IF;
    END IF;
    PERFORM pg_notify('authapi_credentials',
        'key:' || encode(OLD.digest, 'hex') || ':' || OLD.user_id::text);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

DROP TRIGGER api_keys_notify_update ON api_keys;
DROP TRIGGER api_keys_notify_delete ON api_keys;
CREATE TRIGGER api_keys_notify_insert
    AFTER INSERT ON api_keys FOR EACH ROW
    EXECUTE FUNCTION authapi_notify_keys();
-- An update that changes nothing (revoking a revoked key) says nothing.
CREATE TRIGGER api_keys_notify_update
    AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION authapi_notify_keys();
CREATE TRIGGER api_keys_notify_delete
    AFTER DELETE ON api_keys FOR EACH ROW
    EXECUTE FUNCTION authapi_notify_keys();

-- +goose Down
DROP TRIGGER api_keys_notify_delete ON api_keys;
DROP TRIGGER api_keys_notify_update ON api_keys;
DROP TRIGGER api_keys_notify_insert ON api_keys;
DROP FUNCTION authapi_notify_keys();
CREATE TRIGGER api_keys_notify_update
    AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.digest IS DISTINCT FROM NEW.digest
          OR OLD.user_id IS DISTINCT FROM NEW.user_id
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
          OR OLD.scopes IS DISTINCT FROM NEW.scopes)
    EXECUTE FUNCTION authapi_notify_credentials();
CREATE TRIGGER api_keys_notify_delete
    AFTER DELETE ON api_keys FOR EACH ROW
    EXECUTE FUNCTION authapi_notify_credentials();
