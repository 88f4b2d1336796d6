-- gatehouse additions. Only adds: FS keeps working on this database.
-- Emails are looked up case-insensitively; one account per email in any case.
CREATE UNIQUE INDEX IF NOT EXISTS gh_user_email_lower ON "user" (lower(email));
CREATE UNIQUE INDEX IF NOT EXISTS gh_roles_users_pair ON roles_users (user_id, role_id);
-- The demo API's article likes: one like per user and article.
CREATE TABLE IF NOT EXISTS gh_article_like (
	id BIGSERIAL PRIMARY KEY,
	article_id BIGINT NOT NULL,
	user_id INTEGER NOT NULL REFERENCES "user" (id),
	created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	UNIQUE (article_id, user_id)
);
