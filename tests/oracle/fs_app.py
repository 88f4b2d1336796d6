"""The oracle: a small, real Flask-Security-Too 5.9.2 app with the same
secrets and salts as the gatehouse under test, on the same database.

    ORACLE_DB=<SQLAlchemy URL> ORACLE_SECRET_KEY=... ORACLE_PASSWORD_SALT=... \
        python fs_app.py PORT          # serve on 127.0.0.1:PORT
    ... flask --app fs_app users reset_access EMAIL   # FS's own CLI

It mirrors gatehouse's defaults where FS lets it (bcrypt, a day-long token,
CSRF off, as the oracle speaks JSON with tokens; recoverable, confirmable
with sign-in allowed before confirming, change of email, sign-in after a
reset) and the demo API routes the tests use; everything else is FS's
default. Mails are written as JSON files to ORACLE_MAIL_DIR (when set), with
their link and token, for the tests to follow.
"""

import json
import os
import sys
import time
from datetime import timedelta

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from flask_security import (
    Security,
    SQLAlchemyUserDatastore,
    auth_required,
    auth_token_required,
    current_user,
    roles_required,
)
from flask_security.mail_util import MailUtil
from flask_security.models import fsqla_v4 as fsqla

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ["ORACLE_SECRET_KEY"],
    SECURITY_PASSWORD_SALT=os.environ["ORACLE_PASSWORD_SALT"],
    SQLALCHEMY_DATABASE_URI=os.environ["ORACLE_DB"],
    SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
    # gatehouse writes bcrypt; the cost is the test suite's.
    SECURITY_PASSWORD_HASH="bcrypt",
    SECURITY_PASSWORD_HASH_PASSLIB_OPTIONS={"bcrypt__rounds": 4},
    # gatehouse's token lifetime (FS 5.9's default is 15 minutes).
    SECURITY_TOKEN_MAX_AGE=timedelta(days=1),
    SECURITY_REGISTERABLE=True,
    SECURITY_CHANGEABLE=True,
    SECURITY_TRACKABLE=True,
    SECURITY_SEND_REGISTER_EMAIL=False,
    SECURITY_SEND_PASSWORD_CHANGE_EMAIL=False,
    # No DNS here (and none needed to compare answers).
    SECURITY_EMAIL_VALIDATOR_ARGS={"check_deliverability": False},
    # The oracle is driven by JSON with tokens, which need no CSRF token on
    # either side; FS's CSRF for session forms is not compared here.
    WTF_CSRF_ENABLED=False,
    # Account recovery by email, as gatehouse serves it.
    SECURITY_RECOVERABLE=True,
    SECURITY_CONFIRMABLE=True,
    SECURITY_LOGIN_WITHOUT_CONFIRMATION=True,
    SECURITY_CHANGE_EMAIL=True,
    SECURITY_AUTO_LOGIN_AFTER_RESET=True,
    # Two-factor with an authenticator app; the secrets that encrypt the
    # stored keys are gatehouse's security.totp_secrets.
    SECURITY_TWO_FACTOR=True,
    SECURITY_TWO_FACTOR_ENABLED_METHODS=["authenticator"],
    SECURITY_TOTP_SECRETS=json.loads(os.environ.get("ORACLE_TOTP_SECRETS", '{"1": "oracle-totp-secret"}')),
    SECURITY_TOTP_ISSUER="gatehouse-oracle",
    # Recovery codes, Fernet-encrypted under gatehouse's
    # security.recovery_codes_keys.
    SECURITY_MULTI_FACTOR_RECOVERY_CODES=True,
    SECURITY_MULTI_FACTOR_RECOVERY_CODES_KEYS=json.loads(os.environ.get("ORACLE_RC_KEYS", "null")),
    # "Remember this browser" (the tf_validity cookie), as gatehouse's
    # security.two_factor_always_validate = false.
    SECURITY_TWO_FACTOR_ALWAYS_VALIDATE=False,
    # FS 5.9's refresh tokens (fsqla_v4's fs_refresh), in FS's cookie.
    SECURITY_REFRESH_TOKEN=True,
)


class FileMail(MailUtil):
    """Writes each mail as JSON to ORACLE_MAIL_DIR instead of sending it."""

    def send_mail(self, template, subject, recipient, sender, body, html, **kwargs):
        directory = os.environ.get("ORACLE_MAIL_DIR")
        if not directory:
            return
        mail = dict(
            template=template,
            subject=str(subject),
            recipient=recipient,
            body=body,
            token=kwargs.get("token") or kwargs.get("reset_token") or kwargs.get("confirmation_token"),
            link=kwargs.get("link") or kwargs.get("reset_link") or kwargs.get("confirmation_link"),
        )
        name = os.path.join(directory, f"{time.time_ns()}.json")
        with open(name + ".tmp", "w") as f:
            json.dump(mail, f)
        os.rename(name + ".tmp", name)

db = SQLAlchemy(app)
fsqla.FsModels.set_db_info(db)


class Role(db.Model, fsqla.FsRoleMixin):
    pass


class User(db.Model, fsqla.FsUserMixin):
    pass


class FsRefreshTracker(db.Model, fsqla.FsRefreshTrackerMixin):
    # FS's default name for the table (FsModels.refresh_table_name).
    __tablename__ = "fs_refresh"


security = Security(
    app,
    SQLAlchemyUserDatastore(db, User, Role, refresh_tracker_model=FsRefreshTracker),
    mail_util_cls=FileMail,
)


@app.route("/api/test")
@auth_token_required
def api_test():
    return jsonify(msg="Hello World")


@app.route("/api/me")
@auth_required("token", "session")
def api_me():
    return jsonify(
        id=current_user.id,
        email=current_user.email,
        roles=sorted(r.name for r in current_user.roles),
    )


@app.route("/api/admin/users")
@auth_required("token", "session")
@roles_required("admin")
def admin_users():
    return jsonify(users=[u.email for u in User.query.order_by(User.id)])


@app.route("/livez")
def livez():
    return jsonify(status="ok")


if __name__ == "__main__":
    with app.app_context():
        db.create_all()  # gatehouse migrated first: a no-op then
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
