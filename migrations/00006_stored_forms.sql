-- +goose NO TRANSACTION
-- +goose Up
-- The database holds the stored forms of the account rules (package
-- account, which the store applies before every write), so that no path
-- past them, an operator's SQL or a bug above, stores what the API would
-- refuse: an email of the API's shape (at most 254 characters, a local part
-- of at most 64), a full name that is not only white space, scopes listed
-- once each.
--
-- Rows stored before the rules (through the twin-member bug of issue 11)
-- are repaired first where the repair is unambiguous: duplicate scopes are
-- dropped and a blank full name becomes the username. An email cannot be
-- repaired; its constraint may stay NOT VALID (see 00007), and an update of
-- such a row is then refused with 422 naming the email, never a 500.
--
-- The constraints are added NOT VALID, which holds them for every new
-- write at the cost of a brief lock and no scan; 00007 validates them
-- without blocking writes. Each statement is a transaction of its own
-- (NO TRANSACTION, and written so that a rerun after a failure part-way
-- does no harm): the migration never holds the lock of one table while it
-- waits for another's, which would deadlock with a request that reads
-- api_keys joined to users while instances of the previous version serve.

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION authapi_distinct(a text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT count(*) = count(DISTINCT x) FROM unnest(a) AS x
$$;
-- +goose StatementEnd

UPDATE api_keys SET scopes = ARRAY(SELECT DISTINCT x FROM unnest(scopes) AS x ORDER BY x)
WHERE NOT authapi_distinct(scopes);
UPDATE users SET full_name = username
WHERE full_name !~ '[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]';

-- +goose StatementBegin
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'api_keys_scopes_distinct') THEN
        ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_distinct CHECK (authapi_distinct(scopes)) NOT VALID;
    END IF;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'users_email_shape') THEN
        ALTER TABLE users ADD CONSTRAINT users_email_shape CHECK (
            char_length(email) <= 254 AND char_length(split_part(email, '@', 1)) <= 64
            AND email ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$'
        ) NOT VALID;
    END IF;
END $$;
-- +goose StatementEnd

-- Unicode's White_Space characters and the byte order mark: the spec's
-- full_name pattern.
-- +goose StatementBegin
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'users_full_name_not_blank') THEN
        ALTER TABLE users ADD CONSTRAINT users_full_name_not_blank CHECK (
            full_name ~ '[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]'
        ) NOT VALID;
    END IF;
END $$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_distinct;
ALTER TABLE users DROP CONSTRAINT users_full_name_not_blank;
ALTER TABLE users DROP CONSTRAINT users_email_shape;
DROP FUNCTION authapi_distinct(text[]);
