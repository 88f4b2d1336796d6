-- Flask-Security 5.9's refresh tokens (fsqla_v4's FsRefreshTracker, in the
-- table FS names fs_refresh), as SQLAlchemy creates it.
CREATE TABLE IF NOT EXISTS fs_refresh (
	id SERIAL NOT NULL,
	refresh_family VARCHAR(64) NOT NULL,
	gen INTEGER,
	expires_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	revoked_at TIMESTAMP WITHOUT TIME ZONE,
	last_used_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	create_datetime TIMESTAMP WITHOUT TIME ZONE DEFAULT now() NOT NULL,
	name VARCHAR(64) NOT NULL,
	user_id INTEGER NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (refresh_family),
	FOREIGN KEY(user_id) REFERENCES "user" (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS fs_refresh_user ON fs_refresh (user_id);
-- gatehouse: every sign-in is a device (a browser session, a refresh
-- family, the tokens minted from them), listed and revoked one by one.
-- Times are unix seconds; authn_at is the primary authentication time
-- (fs_paa) the device's tokens carry, refreshes included.
CREATE TABLE IF NOT EXISTS gh_device (
	id VARCHAR(64) NOT NULL PRIMARY KEY,
	user_id INTEGER NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
	label VARCHAR(200) NOT NULL,
	ip VARCHAR(64),
	created_at BIGINT NOT NULL,
	last_used_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	authn_at DOUBLE PRECISION NOT NULL,
	refresh_family VARCHAR(64) UNIQUE
);
CREATE INDEX IF NOT EXISTS gh_device_user ON gh_device (user_id);
CREATE INDEX IF NOT EXISTS gh_device_expiry ON gh_device (expires_at);
ALTER TABLE gh_session ADD COLUMN device_id VARCHAR(64);
CREATE INDEX IF NOT EXISTS gh_session_device ON gh_session (device_id);
-- Personal access tokens: named, expiring, optionally scoped to some of
-- the user's roles; only the SHA-256 of the secret is kept.
CREATE TABLE IF NOT EXISTS gh_pat (
	id VARCHAR(32) NOT NULL PRIMARY KEY,
	user_id INTEGER NOT NULL REFERENCES "user" (id) ON DELETE CASCADE,
	name VARCHAR(100) NOT NULL,
	secret_hash VARCHAR(64) NOT NULL,
	scope TEXT,
	created_at BIGINT NOT NULL,
	last_used_at BIGINT,
	expires_at BIGINT NOT NULL,
	revoked_at BIGINT
);
CREATE INDEX IF NOT EXISTS gh_pat_user ON gh_pat (user_id);
