-- Server-side record of each signed-in session, so one session can be ended
-- (logout) without touching the others. The cookie holds the id; only its
-- SHA-256 is stored. Times are unix seconds.
CREATE TABLE IF NOT EXISTS gh_session (
	id_hash VARCHAR(64) NOT NULL PRIMARY KEY,
	user_id INTEGER NOT NULL REFERENCES user (id),
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS gh_session_user ON gh_session (user_id);
CREATE INDEX IF NOT EXISTS gh_session_expiry ON gh_session (expires_at);
-- Sign-in attempts per account key (normalised email), shared by every
-- instance on this database. Times are unix seconds.
CREATE TABLE IF NOT EXISTS gh_throttle (
	key VARCHAR(255) NOT NULL PRIMARY KEY,
	attempts INTEGER NOT NULL,
	granted INTEGER NOT NULL,
	window_start BIGINT NOT NULL,
	next_allowed BIGINT NOT NULL,
	delay INTEGER NOT NULL
);
