//! Test harness: the real app (Rocket's local client) on a fresh database per
//! test. `GATEHOUSE_TEST_PG=postgres://…` runs the suite on PostgreSQL, one
//! fresh schema per test; otherwise each test gets its own SQLite file.

#![allow(dead_code)]

use std::net::SocketAddr;

use gatehouse::core::new_uniquifier;
use gatehouse::db::Db;
use gatehouse::Security;
use rocket::figment::Figment;
use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::{Client, LocalRequest};
use serde_json::Value;

/// The Rocket key that encrypts session cookies in tests (fixed, so two app
/// instances on one database can read each other's cookies).
pub const ROCKET_KEY: &str = "drj9MW7ABB2o19ywMcNcoCVNlPEZ05NtGIItbuqzlYw=";
pub const SECRET_KEY: &str = "test-secret-key";
pub const PASSWORD_SALT: &str = "test-password-salt";
pub const PASSWORD: &str = "correct horse";

/// Runs `$body` with `$p` bound to the test app's concrete pool: the same
/// query code on SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_pool {
    ($app:expr, $p:ident => $body:expr) => {
        match $app.dbh().pool() {
            gatehouse::db::Pool::Sqlite($p) => $body,
            gatehouse::db::Pool::Postgres($p) => $body,
        }
    };
}

/// Where a test's database lives.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

/// A brand-new, empty database for one test.
pub async fn fresh_db() -> TestDb {
    match std::env::var("GATEHOUSE_TEST_PG") {
        Ok(base) if !base.is_empty() => {
            use sqlx::Connection;
            let schema = format!("t_{}", new_uniquifier());
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("GATEHOUSE_TEST_PG must point at a reachable PostgreSQL");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .await
                .expect("create test schema");
            conn.close().await.ok();
            let sep = if base.contains('?') { '&' } else { '?' };
            TestDb {
                url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                _dir: None,
            }
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
            TestDb {
                url,
                _dir: Some(dir),
            }
        }
    }
}

/// A sign-in body with the wrong password.
pub fn wrong(email: &str) -> Value {
    serde_json::json!({"email": email, "password": "not-the-password"})
}

/// The test configuration on top of Rocket's defaults.
pub fn figment(db_url: &str) -> Figment {
    Figment::from(rocket::Config::debug_default())
        .merge(("secret_key", ROCKET_KEY))
        .merge(("log_level", "off"))
        .merge(("databases.gatehouse.url", db_url))
        .merge(("databases.gatehouse.max_connections", 4))
        .merge(("security.secret_key", SECRET_KEY))
        .merge(("security.password_salt", PASSWORD_SALT))
        .merge(("security.bcrypt_cost", 4))
        .merge(("mail.dir", std::env::temp_dir().join("gatehouse-test-mail")))
        .merge(("mail.poll_interval_ms", 200))
}

/// A running app, its database, and its clock (tests move it instead of
/// sleeping).
pub struct TestApp {
    pub client: Client,
    pub db: TestDb,
    pub clock: gatehouse::core::ManualClock,
    /// Where this app's file transport writes its mails.
    pub mail: tempfile::TempDir,
}

/// The app on a fresh database with the test configuration.
pub async fn app() -> TestApp {
    app_with(|f| f).await
}

/// The app with extra configuration.
pub async fn app_with(tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
    let db = fresh_db().await;
    let clock = gatehouse::core::ManualClock::default();
    let mail = tempfile::tempdir().expect("temp dir");
    let dir = mail.path().to_owned();
    let client = client_on_clock(
        &db.url,
        |f| tweak(f.merge(("mail.dir", dir))),
        clock.clone(),
    )
    .await;
    TestApp {
        client,
        db,
        clock,
        mail,
    }
}

/// Another app instance on an existing database.
pub async fn client_on(url: &str, tweak: impl FnOnce(Figment) -> Figment) -> Client {
    client_on_clock(url, tweak, gatehouse::core::ManualClock::default()).await
}

/// Another app instance on an existing database, on the given clock.
pub async fn client_on_clock(
    url: &str,
    tweak: impl FnOnce(Figment) -> Figment,
    clock: gatehouse::core::ManualClock,
) -> Client {
    let rocket = gatehouse::demo::mount(gatehouse::rocket_with_clock(
        tweak(figment(url)),
        std::sync::Arc::new(clock),
    ));
    Client::untracked(rocket).await.expect("the app ignites")
}

/// An owned response, read in full.
#[derive(Debug)]
pub struct Resp {
    pub status: Status,
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<Cookie<'static>>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// The raw `Set-Cookie` line for `name`, attributes included.
    pub fn raw_cookie(&self, name: &str) -> String {
        let prefix = format!("{name}=");
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no Set-Cookie for {name}: {:?}", self.set_cookies()))
            .to_owned()
    }
    pub fn cookie(&self, name: &str) -> Option<&Cookie<'static>> {
        self.cookies.iter().find(|c| c.name() == name)
    }
    /// `response.errors` of an envelope.
    pub fn errors(&self) -> Vec<String> {
        serde_json::from_value(self.json()["response"]["errors"].clone()).unwrap_or_default()
    }
    pub fn token(&self) -> String {
        self.json()["response"]["user"]["authentication_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {}", self.body))
            .to_owned()
    }
    pub fn csrf(&self) -> String {
        self.json()["response"]["csrf_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no csrf_token in {}", self.body))
            .to_owned()
    }
    /// The body with HTML entities decoded (minijinja escapes `/` too).
    pub fn text(&self) -> String {
        self.body
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }
    pub fn location(&self) -> &str {
        self.header("Location").expect("a Location header")
    }
}

/// Sends a request and reads the whole response.
pub async fn send(req: LocalRequest<'_>) -> Resp {
    let res = req.dispatch().await;
    let status = res.status();
    let headers = res
        .headers()
        .iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect();
    let cookies = res
        .cookies()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    let body = res.into_string().await.unwrap_or_default();
    Resp {
        status,
        headers,
        cookies,
        body,
    }
}

/// A cookie jar: one "browser". Applies its cookies to requests and absorbs
/// Set-Cookie from responses (removals included).
#[derive(Default, Clone)]
pub struct Browser {
    pub jar: Vec<Cookie<'static>>,
}

impl Browser {
    pub async fn send(&mut self, req: LocalRequest<'_>) -> Resp {
        let req = req.cookies(self.jar.clone());
        let resp = send(req).await;
        for c in &resp.cookies {
            self.jar.retain(|j| j.name() != c.name());
            let removed =
                c.value().is_empty() || c.max_age().is_some_and(|a| a.is_zero() || a.is_negative());
            if !removed {
                self.jar.push(c.clone());
            }
        }
        resp
    }
    pub fn get(&self, name: &str) -> Option<&Cookie<'static>> {
        self.jar.iter().find(|c| c.name() == name)
    }
    /// Submits an HTML form as its page would: `fields` plus the
    /// `csrf_token` the page carries (the one in the XSRF-TOKEN cookie).
    pub async fn submit(
        &mut self,
        client: &Client,
        path: impl AsRef<str>,
        fields: &[(&str, &str)],
    ) -> Resp {
        let csrf = self.xsrf();
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        self.send(form_body(client.post(path.as_ref().to_owned()), &all))
            .await
    }
    pub fn xsrf(&self) -> String {
        self.get("XSRF-TOKEN")
            .expect("an XSRF-TOKEN cookie")
            .value()
            .to_owned()
    }
}

pub fn json_body(req: LocalRequest<'_>, body: Value) -> LocalRequest<'_> {
    req.header(ContentType::JSON).body(body.to_string())
}

pub fn form_body<'a>(req: LocalRequest<'a>, fields: &[(&str, &str)]) -> LocalRequest<'a> {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    req.header(ContentType::Form).body(body.join("&"))
}

pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub fn accept_json(req: LocalRequest<'_>) -> LocalRequest<'_> {
    req.header(Header::new("Accept", "application/json"))
}

pub fn token_header<'a>(req: LocalRequest<'a>, token: &str) -> LocalRequest<'a> {
    req.header(Header::new("Authentication-Token", token.to_owned()))
}

pub fn peer() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

impl TestApp {
    pub fn sec(&self) -> &Security {
        self.client.rocket().state::<Security>().expect("state")
    }
    pub fn dbh(&self) -> &Db {
        &self.sec().db
    }

    /// Creates an active user directly in the database.
    pub async fn user(&self, email: &str) -> gatehouse::db::User {
        self.user_with(email, PASSWORD, &[]).await
    }

    pub async fn user_with(
        &self,
        email: &str,
        password: &str,
        roles: &[&str],
    ) -> gatehouse::db::User {
        let sec = self.sec();
        let hash = sec
            .hasher
            .hash(&gatehouse::core::password::normalize(password))
            .await
            .unwrap();
        let user = sec
            .db
            .create_user(email, Some(&hash), &gatehouse::core::new_ids(email), &[])
            .await
            .expect("new email");
        for r in roles {
            let role = match sec.db.role_by_name(r).await.unwrap() {
                Some(role) => role,
                None => sec.db.create_role(r, None, None).await.unwrap(),
            };
            sec.db.add_role(user.id, role.id).await.unwrap();
        }
        user
    }

    /// POST /login?include_auth_token as JSON; panics unless 200.
    pub async fn login_token(&self, email: &str, password: &str) -> String {
        let r = self
            .post_json(
                "/login?include_auth_token",
                serde_json::json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status, Status::Ok, "{}", r.body);
        r.token()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Resp {
        send(json_body(self.client.post(path.to_owned()), body).remote(peer())).await
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Resp {
        send(token_header(self.client.get(path.to_owned()), token)).await
    }

    /// A browser signed in through the JSON login (cookies kept).
    pub async fn browser_login(&self, email: &str, password: &str) -> Browser {
        let mut b = Browser::default();
        let r = b
            .send(json_body(
                self.client.post("/login"),
                serde_json::json!({"email": email, "password": password}),
            ))
            .await;
        assert_eq!(r.status, Status::Ok, "{}", r.body);
        b
    }
}

/// A user row as Flask-Security-Too writes it (SQLite: integer booleans,
/// text datetimes).
pub struct FsUser<'a> {
    pub id: i64,
    pub email: &'a str,
    pub password: &'a str,
    pub active: bool,
    pub uniquifier: &'a str,
}

/// Creates a SQLite database exactly as FS's fsqla_v3 models do (their
/// DDL), with these users and roles (`(name, permissions, [user ids])`).
/// Returns its URL.
pub async fn fs_sqlite_database(
    dir: &std::path::Path,
    users: &[FsUser<'_>],
    roles: &[(&str, &str, &[i64])],
) -> String {
    use sqlx::{Connection, Executor};
    let url = format!("sqlite://{}?mode=rwc", dir.join("flask.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    conn.execute(include_str!("../fixtures/fsqla_v3-sqlite.sql"))
        .await
        .unwrap();
    for u in users {
        sqlx::query(
            "INSERT INTO user (id, email, password, active, fs_uniquifier, create_datetime, update_datetime, login_count)
             VALUES (?1, ?2, ?3, ?4, ?5, '2025-01-02 03:04:05.678901', '2025-01-02 03:04:05.678901', 3)",
        )
        .bind(u.id)
        .bind(u.email)
        .bind(u.password)
        .bind(i64::from(u.active))
        .bind(u.uniquifier)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    for (i, (name, perms, members)) in roles.iter().enumerate() {
        sqlx::query("INSERT INTO role (id, name, permissions) VALUES (?1, ?2, ?3)")
            .bind(i as i64 + 1)
            .bind(name)
            .bind(perms)
            .execute(&mut conn)
            .await
            .unwrap();
        for m in *members {
            sqlx::query("INSERT INTO roles_users (user_id, role_id) VALUES (?1, ?2)")
                .bind(m)
                .bind(i as i64 + 1)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    conn.close().await.unwrap();
    url
}
