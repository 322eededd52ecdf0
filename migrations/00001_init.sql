-- +goose Up
CREATE TABLE users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text        NOT NULL CHECK (username ~ '^[A-Za-z0-9]{3,50}$'),
    email         text        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    full_name     text        NOT NULL CHECK (char_length(full_name) BETWEEN 1 AND 200),
    password_hash text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Uniqueness without regard to case is the database's job, so that
-- concurrent registrations of one name cannot both succeed.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE api_keys (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    prefix     text        NOT NULL CHECK (prefix ~ '^rst_[A-Za-z0-9]{4}$'),
    -- HMAC-SHA-256 of the raw key under a pepper kept outside the database.
    digest     bytea       NOT NULL UNIQUE CHECK (octet_length(digest) = 32),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_user_id_created_at ON api_keys (user_id, created_at DESC);

-- One row per failed (or in-flight) login, for throttling per username and
-- client address. Rows older than the window are deleted periodically.
CREATE TABLE login_failures (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username  text        NOT NULL, -- lower-cased as attempted
    address   text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX login_failures_username_address ON login_failures (username, address, failed_at);
CREATE INDEX login_failures_address ON login_failures (address, failed_at);
CREATE INDEX login_failures_failed_at ON login_failures (failed_at);

-- +goose Down
DROP TABLE login_failures;
DROP TABLE api_keys;
DROP TABLE users;
