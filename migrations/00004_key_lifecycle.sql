-- +goose Up
ALTER TABLE api_keys
    ADD COLUMN scopes       text[]      NOT NULL DEFAULT '{me:read,me:write}'
                            CHECK (cardinality(scopes) >= 1 AND scopes <@ '{me:read,me:write}'),
    -- The key stops working at expires_at: its own expiry, or the end of
    -- the grace period after a rotation, whichever is sooner.
    ADD COLUMN expires_at   timestamptz,
    -- The lifetime the key was created with (NULL: none), which a rotation
    -- gives the replacement, counted from the rotation.
    ADD COLUMN lifetime_seconds bigint CHECK (lifetime_seconds > 0),
    -- To the minute; written at most once a minute, off the request path.
    ADD COLUMN last_used_at timestamptz;

-- A key's expiry (changed by a rotation) and scopes limit what it grants:
-- announce their changes too (see 00003), so that every instance drops what
-- it cached. last_used_at only records use and stays out.
DROP TRIGGER api_keys_notify_update ON api_keys;
CREATE TRIGGER api_keys_notify_update
    AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.digest IS DISTINCT FROM NEW.digest
          OR OLD.user_id IS DISTINCT FROM NEW.user_id
          OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
          OR OLD.scopes IS DISTINCT FROM NEW.scopes)
    EXECUTE FUNCTION authapi_notify_credentials();

-- +goose Down
DROP TRIGGER api_keys_notify_update ON api_keys;
CREATE TRIGGER api_keys_notify_update
    AFTER UPDATE ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.digest IS DISTINCT FROM NEW.digest
          OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION authapi_notify_credentials();
ALTER TABLE api_keys DROP COLUMN last_used_at, DROP COLUMN lifetime_seconds, DROP COLUMN expires_at, DROP COLUMN scopes;
