-- +goose Up
-- One row per registration attempt that reached the handler, for limiting
-- registrations per client address. Kept in the database, like the login
-- failures, so that the limit holds across restarts and instances. Rows
-- older than the window are deleted periodically.
CREATE TABLE registration_attempts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    address      text        NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX registration_attempts_address ON registration_attempts (address, attempted_at);
CREATE INDEX registration_attempts_attempted_at ON registration_attempts (attempted_at);

-- +goose Down
DROP TABLE registration_attempts;
