-- One canonical form of each email (NFKC, full Unicode case folding, IDNA
-- domain), computed by gatehouse, so look-alike spellings (composed or
-- decomposed accents, fullwidth letters, any letter case, Unicode or
-- punycode domains) are one account on SQLite and PostgreSQL alike.
-- Rows written by Flask-Security leave it NULL; gatehouse fills it in.
ALTER TABLE "user" ADD COLUMN IF NOT EXISTS gh_email_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS gh_user_email_key ON "user" (gh_email_key);
