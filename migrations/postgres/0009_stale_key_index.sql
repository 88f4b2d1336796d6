-- The rows whose email key is missing or stale (Flask-Security wrote or
-- changed the email), which gatehouse keys before each registration and
-- change of email: a partial index, so finding them does not read every
-- account.
CREATE INDEX IF NOT EXISTS gh_user_unkeyed ON "user" (id)
	WHERE gh_email_key IS NULL OR gh_email_source IS NULL OR gh_email_source <> email;
