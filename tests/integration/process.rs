//! The real binary as a process: admin commands, and a server on a loopback
//! port spoken to over plain HTTP/1.1.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{PASSWORD_SALT, ROCKET_KEY, SECRET_KEY};

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// The environment that points the binary at `db_url` with the test secrets.
pub fn env(db_url: &str, security_extra: &str) -> Vec<(String, String)> {
    vec![
        ("ROCKET_DATABASES".into(), format!("{{gatehouse={{url=\"{db_url}\"}}}}")),
        (
            "ROCKET_SECURITY".into(),
            format!(
                "{{secret_key=\"{SECRET_KEY}\",password_salt=\"{PASSWORD_SALT}\",bcrypt_cost=4{security_extra}}}"
            ),
        ),
        ("ROCKET_SECRET_KEY".into(), ROCKET_KEY.into()),
        ("ROCKET_ADDRESS".into(), "127.0.0.1".into()),
    ]
}

fn command(envs: &[(String, String)]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env_remove("ROCKET_PROFILE")
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    c
}

/// Runs `gatehouse ARGS…` with `stdin`, to completion.
pub fn run(envs: &[(String, String)], args: &[&str], stdin: &str) -> Output {
    let mut child = command(envs)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gatehouse runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Waits (at most 30 s) until something listens on `port`; `why` tells
/// what was expected, for the failure message.
pub fn wait_until_listening(port: u16, why: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A helper process (nginx, a backend, the FS app), stopped on drop:
/// SIGTERM first, so that a master process takes its workers down with it
/// (a SIGKILL would orphan them), then SIGKILL if it is still there after
/// 5 s.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process; killed on drop. Its stderr (the logs) goes to a file.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start(envs: &[(String, String)]) -> Server {
        Self::start_in(envs, std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
    }

    /// A server started with `cwd` as its working directory.
    pub fn start_in(envs: &[(String, String)], cwd: &std::path::Path) -> Server {
        Self::start_as(envs, cwd, None)
    }

    /// A server started in `cwd` as the user `uid` (when given; the tests
    /// must run as root for that).
    pub fn start_as(envs: &[(String, String)], cwd: &std::path::Path, uid: Option<u32>) -> Server {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let port = free_port();
        let mut command = command(envs);
        if let Some(uid) = uid {
            command.uid(uid).gid(uid);
        }
        // The file transport writes here, not into the checkout.
        if !envs.iter().any(|(k, _)| k == "ROCKET_MAIL") {
            let mail = dir.path().join("mail");
            command.env("ROCKET_MAIL", format!("{{dir=\"{}\"}}", mail.display()));
        }
        let child = command
            .current_dir(cwd)
            .env("ROCKET_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("gatehouse starts");
        wait_until_listening(port, || {
            format!(
                "server did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Server {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<HttpResp> {
        http(self.port, method, path, headers, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read off the wire.
#[derive(Debug)]
pub struct HttpResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    /// `name=value` of a Set-Cookie, for sending back.
    pub fn cookie_pair(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.split(';').next().unwrap_or("").to_owned())
            .find(|pair| pair.starts_with(&format!("{name}=")))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<HttpResp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("incomplete response: {text:?}"),
        )
    })?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(HttpResp {
        status,
        headers,
        body: body.to_owned(),
    })
}
