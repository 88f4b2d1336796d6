//! Database trouble on a real PostgreSQL this test starts itself: stopped,
//! hung (SIGSTOP), connections killed. Every request that needs the database
//! gets 503 + Retry-After within 2 seconds, never a 500 or a 401, and the
//! server recovers by itself.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rocket::http::Status;
use rocket::local::asynchronous::Client;
use serde_json::json;

use crate::common::*;

fn pg_bin(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort();
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

fn as_postgres(args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .arg("-u")
        .arg("postgres")
        .arg("--")
        .args(args)
        .output()
        .expect("runuser")
}

/// A throwaway PostgreSQL cluster on a free port; stopped and removed on drop.
struct Cluster {
    dir: PathBuf,
    port: u16,
    pg_ctl: String,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let (initdb, pg_ctl) = (pg_bin("initdb")?, pg_bin("pg_ctl")?);
        let dir = std::env::temp_dir().join(format!("gh-pg-{}", gatehouse::core::new_uniquifier()));
        std::fs::create_dir_all(&dir).unwrap();
        Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status()
            .unwrap();
        let data = dir.join("data");
        let out = as_postgres(&[
            initdb.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster {
            dir,
            port: crate::process::free_port(),
            pg_ctl: pg_ctl.to_str().unwrap().to_owned(),
        };
        cluster.up();
        Some(cluster)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let out = as_postgres(&[
            &self.pg_ctl,
            "-D",
            data.to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn down(&self) {
        let data = self.dir.join("data");
        as_postgres(&[
            &self.pg_ctl,
            "-D",
            data.to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }

    /// The postmaster and every backend.
    fn pids(&self) -> Vec<String> {
        let pidfile = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap();
        let main = pidfile.lines().next().unwrap().trim().to_owned();
        let children = Command::new("pgrep").args(["-P", &main]).output().unwrap();
        let mut pids = vec![main];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .lines()
                .map(str::to_owned),
        );
        pids
    }

    fn signal(&self, sig: &str) {
        for pid in self.pids() {
            Command::new("kill").args([sig, &pid]).status().unwrap();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.dir.join("data/postmaster.pid").exists() {
            self.signal("-CONT");
        }
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Times one request and checks it is a prompt 503 with Retry-After.
async fn prompt_503(what: &str, req: rocket::local::asynchronous::LocalRequest<'_>) {
    let start = Instant::now();
    let r = send(req).await;
    let took = start.elapsed();
    assert_eq!(
        r.status,
        Status::ServiceUnavailable,
        "{what}: {} {}",
        r.status,
        r.body
    );
    assert!(r.header("Retry-After").is_some(), "{what}");
    assert!(took < Duration::from_secs(2), "{what} took {took:?}");
}

async fn recovers(client: &Client, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = send(token_header(client.get("/api/test"), token)).await;
        assert!(
            r.status == Status::Ok || r.status == Status::ServiceUnavailable,
            "never {}: {}",
            r.status,
            r.body
        );
        if r.status == Status::Ok {
            return;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[rocket::async_test]
async fn postgres_stopped_hung_and_killed() {
    let Some(cluster) = Cluster::start() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL binaries are needed in CI"
        );
        eprintln!("!! SKIPPED: no PostgreSQL server binaries under /usr/lib/postgresql");
        return;
    };
    let client = client_on(&cluster.url(), |f| {
        f.merge(("databases.gatehouse.timeout_ms", 1000))
    })
    .await;
    let sec = client.rocket().state::<gatehouse::Security>().unwrap();
    let hash = sec
        .hasher
        .hash(&gatehouse::core::password::normalize(PASSWORD))
        .await
        .unwrap();
    sec.db
        .create_user(
            "pg@example.com",
            Some(&hash),
            &gatehouse::core::new_ids("pg@example.com"),
            &[],
        )
        .await
        .unwrap();
    let r = send(json_body(
        client.post("/login?include_auth_token"),
        json!({"email": "pg@example.com", "password": PASSWORD}),
    ))
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let token = r.token();
    let login = || {
        json_body(
            client.post("/login"),
            json!({"email": "pg@example.com", "password": PASSWORD}),
        )
    };

    // Hung: the server accepts nothing and answers nothing.
    cluster.signal("-STOP");
    prompt_503("token, hung", token_header(client.get("/api/test"), &token)).await;
    prompt_503("login, hung", login()).await;
    prompt_503("readyz, hung", client.get("/readyz")).await;
    assert_eq!(
        send(client.get("/livez")).await.status,
        Status::Ok,
        "livez never touches the database"
    );
    cluster.signal("-CONT");
    recovers(&client, &token).await;

    // Stopped.
    cluster.down();
    prompt_503(
        "token, stopped",
        token_header(client.get("/api/test"), &token),
    )
    .await;
    prompt_503("login, stopped", login()).await;
    prompt_503("readyz, stopped", client.get("/readyz")).await;
    cluster.up();
    recovers(&client, &token).await;
    assert_eq!(send(client.get("/readyz")).await.status, Status::Ok);

    // Connections killed under the pool.
    {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&cluster.url()).await.unwrap();
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = 'postgres'")
            .execute(&mut admin)
            .await
            .unwrap();
    }
    recovers(&client, &token).await;
    assert_eq!(send(login()).await.status, Status::Ok);
}
