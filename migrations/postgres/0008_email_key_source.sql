-- The email each gh_email_key was computed from. Flask-Security can change
-- an email (its change-email flow) without knowing about the key: a key
-- whose source is no longer the email is stale, is never matched, and is
-- recomputed by gatehouse (at start, in housekeeping, before registering).
ALTER TABLE "user" ADD COLUMN IF NOT EXISTS gh_email_source TEXT;
UPDATE "user" SET gh_email_source = email WHERE gh_email_key IS NOT NULL;
