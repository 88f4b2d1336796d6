-- Uniqueness is decided by gh_email_key (0004), the same on every database.
-- The old unique index on lower(email) decided it differently on PostgreSQL
-- (whose lower() folds more than SQLite's); it stays as a plain index for
-- finding rows Flask-Security wrote and gatehouse has not keyed yet.
DROP INDEX IF EXISTS gh_user_email_lower;
CREATE INDEX IF NOT EXISTS gh_user_email_lower_lookup ON user (lower(email));
