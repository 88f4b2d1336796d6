-- Flask-Security-Too 5.9 fsqla_v3 tables, exactly as FS creates them in SQLite.
-- IF NOT EXISTS: a database that FS already created is left as it is.
CREATE TABLE IF NOT EXISTS role (
	id INTEGER NOT NULL,
	name VARCHAR(80) NOT NULL,
	description VARCHAR(255),
	permissions TEXT,
	update_datetime DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (name)
);
CREATE TABLE IF NOT EXISTS user (
	fs_webauthn_user_handle VARCHAR(64),
	mf_recovery_codes TEXT,
	password VARCHAR(255),
	us_phone_number VARCHAR(128),
	username VARCHAR(255),
	us_totp_secrets TEXT,
	id INTEGER NOT NULL,
	email VARCHAR(255) NOT NULL,
	active BOOLEAN NOT NULL,
	fs_uniquifier VARCHAR(64) NOT NULL,
	confirmed_at DATETIME,
	last_login_at DATETIME,
	current_login_at DATETIME,
	last_login_ip VARCHAR(64),
	current_login_ip VARCHAR(64),
	login_count INTEGER,
	tf_primary_method VARCHAR(64),
	tf_totp_secret VARCHAR(255),
	tf_phone_number VARCHAR(128),
	create_datetime DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
	update_datetime DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (fs_webauthn_user_handle),
	UNIQUE (us_phone_number),
	UNIQUE (username),
	UNIQUE (email),
	UNIQUE (fs_uniquifier)
);
CREATE TABLE IF NOT EXISTS roles_users (
	user_id INTEGER,
	role_id INTEGER,
	FOREIGN KEY(user_id) REFERENCES user (id),
	FOREIGN KEY(role_id) REFERENCES role (id)
);
