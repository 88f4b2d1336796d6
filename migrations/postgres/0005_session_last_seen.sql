-- When each session was last used (unix seconds), for the inactivity
-- timeout (security.session_idle_timeout). Written at most once a minute
-- per session, not on every request.
ALTER TABLE gh_session ADD COLUMN last_seen_at BIGINT;
