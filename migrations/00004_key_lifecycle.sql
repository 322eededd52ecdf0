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

-- +goose Down
ALTER TABLE api_keys DROP COLUMN last_used_at, DROP COLUMN lifetime_seconds, DROP COLUMN expires_at, DROP COLUMN scopes;
