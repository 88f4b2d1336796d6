"""The Flask-Security-Too 5.9.2 side of `bench/run.sh --side-by-side`: the
tutorial's app (token and session sign-in, fsqla_v4 models) with the routes
the scenarios call, on the database gatehouse serves, run by gunicorn.

    BENCH_DB=sqlite:////path/bench.db BENCH_SECRET_KEY=... BENCH_PASSWORD_SALT=... \
        gunicorn -w 4 -k gthread --threads 4 --chdir bench/fs app:app

Written as a Flask-Security-Too user would, with FS's defaults except where
a JSON API needs it (no CSRF for token requests, as gatehouse) and what the
bench's accounts need (bcrypt, the password hash gatehouse wrote).
"""

import os
from datetime import datetime, timezone

from flask import Flask, jsonify
from flask_security import (
    Security,
    SQLAlchemyUserDatastore,
    auth_required,
    auth_token_required,
)
from flask_security import current_user
from flask_security.models import fsqla_v4 as fsqla
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event, text

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ["BENCH_SECRET_KEY"],
    SECURITY_PASSWORD_SALT=os.environ["BENCH_PASSWORD_SALT"],
    SQLALCHEMY_DATABASE_URI=os.environ["BENCH_DB"],
    SECURITY_PASSWORD_HASH="bcrypt",
    SECURITY_TOKEN_MAX_AGE=86400,
    WTF_CSRF_ENABLED=False,
)
db = SQLAlchemy(app)
fsqla.FsModels.set_db_info(db)


class Role(db.Model, fsqla.FsRoleMixin):
    pass


class User(db.Model, fsqla.FsUserMixin):
    pass


class FsRefreshTracker(db.Model, fsqla.FsRefreshTrackerMixin):
    # fsqla_v4's user relates to it (FS's default table name).
    __tablename__ = "fs_refresh"


security = Security(
    app, SQLAlchemyUserDatastore(db, User, Role, refresh_tracker_model=FsRefreshTracker)
)

with app.app_context():

    @event.listens_for(db.engine, "connect")
    def _wal(conn, _record):
        # WAL, as gatehouse runs SQLite: readers never wait for a writer.
        if db.engine.dialect.name == "sqlite":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")


@app.route("/api/public")
def public():
    return jsonify(msg="Hello, anyone")


@app.route("/api/test")
@auth_token_required
def api_test():
    return jsonify(msg="Hello World")


@app.route("/api/articles/<int:article_id>/likes", methods=["POST"])
@auth_required("token", "session")
def like(article_id):
    """The demo's like, as gatehouse's demo stores it (gh_article_like)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(" ")
    row = db.session.execute(
        text(
            "INSERT INTO gh_article_like (article_id, user_id, created_at) "
            "VALUES (:a, :u, :t) ON CONFLICT (article_id, user_id) DO NOTHING "
            "RETURNING id, article_id, user_id, created_at"
        ),
        dict(a=article_id, u=current_user.id, t=now),
    ).first()
    status = 201
    if row is None:
        status = 200
        row = db.session.execute(
            text(
                "SELECT id, article_id, user_id, created_at FROM gh_article_like "
                "WHERE article_id = :a AND user_id = :u"
            ),
            dict(a=article_id, u=current_user.id),
        ).first()
    count = db.session.execute(
        text("SELECT COUNT(*) FROM gh_article_like WHERE article_id = :a"),
        dict(a=article_id),
    ).scalar()
    db.session.commit()
    like = dict(id=row[0], article_id=row[1], user_id=row[2], created_at=str(row[3]), likes=count)
    return jsonify(like), status
