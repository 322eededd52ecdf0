-- +goose Up
-- Account self-service (issue 12): ending access tokens before their
-- expiry, and each user's security log.
--
-- A token carries the user's token generation when it was issued; ending
-- every token of a user (a password change, a sign-out everywhere) raises
-- the generation, and tokens of an older one are refused. A fast default:
-- no rewrite of the table.
ALTER TABLE users ADD COLUMN token_generation integer NOT NULL DEFAULT 0 CHECK (token_generation >= 0);

-- Single tokens ended by a sign-out, by their jti, until they would have
-- expired anyway; the background work deletes them after that.
CREATE TABLE ended_tokens (
    jti        text        PRIMARY KEY CHECK (char_length(jti) BETWEEN 1 AND 64),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL
);
CREATE INDEX ended_tokens_user_id ON ended_tokens (user_id);
CREATE INDEX ended_tokens_expires_at ON ended_tokens (expires_at);

-- What happened to each account, written in the transaction of the change
-- it records. Never a password, token or raw key: a key by ID and prefix.
CREATE TABLE security_events (
    id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type           text        NOT NULL CHECK (type IN ('login_succeeded', 'login_failed', 'login_throttled',
                       'password_changed', 'logged_out', 'profile_updated',
                       'api_key_created', 'api_key_rotated', 'api_key_revoked')),
    occurred_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    client_address text        NOT NULL CHECK (char_length(client_address) <= 64),
    user_agent     text        NOT NULL CHECK (char_length(user_agent) <= 200),
    key_id         uuid,
    key_prefix     text        CHECK (key_prefix ~ '^rst_[A-Za-z0-9]{4}$')
);
CREATE INDEX security_events_user_page ON security_events (user_id, occurred_at DESC, id DESC);
CREATE INDEX security_events_occurred_at ON security_events (occurred_at);

-- Every instance must hear when a user's tokens end (see 00003): a raised
-- generation is a change of the users row, and an ended token a row here.
DROP TRIGGER users_notify_update ON users;
CREATE TRIGGER users_notify_update
    AFTER UPDATE ON users FOR EACH ROW
    WHEN (OLD.username IS DISTINCT FROM NEW.username
          OR OLD.email IS DISTINCT FROM NEW.email
          OR OLD.full_name IS DISTINCT FROM NEW.full_name
          OR OLD.token_generation IS DISTINCT FROM NEW.token_generation)
    EXECUTE FUNCTION authapi_notify_credentials();

-- +goose StatementBegin
CREATE FUNCTION authapi_notify_ended_token() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('authapi_credentials', 'user:' || NEW.user_id::text);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER ended_tokens_notify_insert
    AFTER INSERT ON ended_tokens FOR EACH ROW
    EXECUTE FUNCTION authapi_notify_ended_token();

-- +goose Down
DROP TRIGGER ended_tokens_notify_insert ON ended_tokens;
DROP FUNCTION authapi_notify_ended_token();
DROP TRIGGER users_notify_update ON users;
CREATE TRIGGER users_notify_update
    AFTER UPDATE ON users FOR EACH ROW
    WHEN (OLD.username IS DISTINCT FROM NEW.username
          OR OLD.email IS DISTINCT FROM NEW.email
          OR OLD.full_name IS DISTINCT FROM NEW.full_name)
    EXECUTE FUNCTION authapi_notify_credentials();
DROP TABLE security_events;
DROP TABLE ended_tokens;
ALTER TABLE users DROP COLUMN token_generation;
