-- Mails waiting to go out. A request only inserts a row; the outbox worker
-- of any instance claims due rows (locked_until, a lease), renders and sends
-- them, and marks them sent, or retries later with a growing delay. Times
-- are unix seconds. `data` is JSON (the kind's parameters).
CREATE TABLE IF NOT EXISTS gh_outbox (
	id BIGSERIAL PRIMARY KEY,
	kind VARCHAR(32) NOT NULL,
	recipient VARCHAR(255) NOT NULL,
	user_id INTEGER,
	data TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	next_attempt_at BIGINT NOT NULL,
	locked_until BIGINT NOT NULL DEFAULT 0,
	attempts INTEGER NOT NULL DEFAULT 0,
	sent_at BIGINT,
	failed_at BIGINT,
	last_error TEXT
);
CREATE INDEX IF NOT EXISTS gh_outbox_due ON gh_outbox (next_attempt_at)
	WHERE sent_at IS NULL AND failed_at IS NULL;
