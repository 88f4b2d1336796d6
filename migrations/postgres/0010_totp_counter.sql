-- The last authenticator step each account signed in with: a code works
-- once (Flask-Security 5.9.2 keeps nothing and accepts a code again).
CREATE TABLE IF NOT EXISTS gh_tf_counter (
	user_id INTEGER NOT NULL PRIMARY KEY,
	last_counter BIGINT NOT NULL
);
