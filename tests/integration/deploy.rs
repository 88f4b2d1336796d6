//! Issue 17, item 6: what deploy/ ships is what runs. The systemd unit
//! passes `systemd-analyze verify`, and the binary starts the way the unit
//! starts it (its environment, deploy/Rocket.toml with the placeholders
//! filled in, an unprivileged user, the state directory as its working
//! directory); the Dockerfile's runtime stage is followed the same way (its
//! ENV, USER and WORKDIR; this machine has no Docker daemon to build the
//! image); the whole of deploy/nginx.conf passes `nginx -t`
//! (forward_auth.rs runs its forward-auth block for real).

use std::os::unix::fs::chown;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{free_port, http, run, Server, BIN};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The user the Dockerfile runs as, and `nobody` for the systemd unit's
/// dynamic user.
const NOBODY: u32 = 65534;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join("deploy").join(name)).unwrap()
}

fn is_root() -> bool {
    // SAFETY: a plain syscall without arguments.
    unsafe { libc::geteuid() == 0 }
}

/// A fresh directory the user `uid` owns (the state or data directory).
fn owned_dir(uid: Option<u32>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(uid) = uid {
        chown(dir.path(), Some(uid), Some(uid)).unwrap();
    }
    dir
}

/// Runs a server as `uid`, signs a user up and in, and checks the
/// database landed in `data`.
fn serves(server: &Server, data: &Path) {
    let r = server.request("GET", "/readyz", &[], "").unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.body, server.logs());
    let json = [("Content-Type", "application/json")];
    let r = server
        .request(
            "POST",
            "/register",
            &json,
            r#"{"email":"ops@example.com","password":"deploy-password","password_confirm":"deploy-password"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.body, server.logs());
    let r = server
        .request(
            "POST",
            "/login?include_auth_token",
            &json,
            r#"{"email":"ops@example.com","password":"deploy-password"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        data.join("gatehouse.db").exists(),
        "the database is in the data directory"
    );
}

/// deploy/Rocket.toml with its placeholders filled in and its paths and
/// ports moved to this test's.
fn filled_rocket_toml(state: &Path, metrics_port: u16) -> String {
    // Base64 of 32 bytes: what `openssl rand -base64 32` gives.
    const SECRET: &str = "ZGVwbG95LXRlc3Qtc2VjcmV0LWtleS0wMTIzNDU2Nzg=";
    let sample = shipped("Rocket.toml");
    assert!(
        sample.matches("\"CHANGE-ME\"").count() >= 3,
        "the sample leaves the secrets to the operator"
    );
    sample
        .replace("\"CHANGE-ME\"", &format!("\"{SECRET}\""))
        .replace("/var/lib/gatehouse/", &format!("{}/", state.display()))
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{metrics_port}"))
}

#[test]
fn the_systemd_unit_verifies_and_starts_the_server_as_it_says() {
    let unit = shipped("gatehouse.service");
    let dir = tempfile::tempdir().unwrap();
    // The unit as installed, with this build's binary in place.
    let path = dir.path().join("gatehouse.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/gatehouse", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (Debian's systemd package)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    // Its environment, with the credential's path for %d.
    let uid = is_root().then_some(NOBODY);
    let state = owned_dir(uid);
    let credentials = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    std::fs::write(
        credentials.path().join("Rocket.toml"),
        filled_rocket_toml(state.path(), metrics_port),
    )
    .unwrap();
    let mut envs: Vec<(String, String)> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            let v = v.replace("%d", &credentials.path().display().to_string());
            (k.to_owned(), v)
        })
        .collect();
    assert!(envs
        .iter()
        .any(|(k, v)| k == "ROCKET_PROFILE" && v == "release"));
    assert!(unit.contains("LoadCredential=Rocket.toml:/etc/gatehouse/Rocket.toml"));
    assert!(unit.contains("WorkingDirectory=/var/lib/gatehouse"));
    assert!(unit.contains("StateDirectory=gatehouse"));

    // The sample, once filled in, is a configuration check-config accepts.
    let check = run(&envs, &["check-config"], "");
    assert!(
        check.status.success(),
        "check-config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    let mut server = Server::start_as(&envs, state.path(), uid);
    serves(&server, state.path());
    let m = http(metrics_port, "GET", "/metrics", &[], "").unwrap();
    assert_eq!(m.status, 200, "metrics on the sample's own address");
    // KillSignal=SIGTERM: a clean exit well within TimeoutStopSec.
    server.sigterm();
    assert!(
        server.wait(Duration::from_secs(20)).success(),
        "{}",
        server.logs()
    );

    // Left as shipped, it refuses to start, in one line that says why.
    std::fs::write(
        credentials.path().join("Rocket.toml"),
        shipped("Rocket.toml"),
    )
    .unwrap();
    envs.push(("ROCKET_PORT".into(), free_port().to_string()));
    let out = run(&envs, &["serve"], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("gatehouse: ") && last.contains("CHANGE-ME placeholder"),
        "{stderr}"
    );
}

/// `ENV A=b C='d e' \` lines of a Dockerfile, as Docker reads them.
fn dockerfile_env(dockerfile: &str) -> Vec<(String, String)> {
    let joined = dockerfile.replace("\\\n", " ");
    let mut envs = Vec::new();
    for line in joined.lines().filter_map(|l| l.trim().strip_prefix("ENV ")) {
        // Words split on blanks outside quotes; the quotes themselves go.
        let (mut word, mut quote, mut words) = (String::new(), None, Vec::new());
        for c in line.chars() {
            match (quote, c) {
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                _ => word.push(c),
            }
        }
        words.push(word);
        for w in words.into_iter().filter(|w| !w.is_empty()) {
            let (k, v) = w.split_once('=').expect("ENV key=value");
            envs.push((k.to_owned(), v.to_owned()));
        }
    }
    envs
}

/// The last value of a Dockerfile instruction (`USER`, `WORKDIR`).
fn instruction<'a>(dockerfile: &'a str, name: &str) -> &'a str {
    dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("the Dockerfile sets {name}"))
        .trim()
}

#[test]
fn the_docker_image_runs_as_a_user_from_its_data_directory() {
    let dockerfile = shipped("Dockerfile");
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    assert!(
        stages[1].contains("distroless"),
        "a small runtime image: {}",
        stages[1]
    );
    let user = instruction(&dockerfile, "USER");
    let uid: u32 = user.split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0, "not root");
    let workdir = instruction(&dockerfile, "WORKDIR");
    assert_eq!(workdir, "/data");
    assert!(dockerfile.contains("--chown=65532:65532 /out/data /data"));

    // The image's environment, /data moved to a directory the user owns,
    // plus the secrets `docker run -e` passes (as the file's header says).
    let data = owned_dir(is_root().then_some(uid));
    let mut envs: Vec<(String, String)> = dockerfile_env(&dockerfile)
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.replace("/data/", &format!("{}/", data.path().display())),
            )
        })
        .collect();
    let get = |k: &str| {
        envs.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("ROCKET_PROFILE").as_deref(), Some("release"));
    assert_eq!(get("ROCKET_ADDRESS").as_deref(), Some("0.0.0.0"));
    assert!(get("ROCKET_DATABASES")
        .unwrap()
        .contains(&data.path().display().to_string()));
    envs.push((
        "ROCKET_SECRET_KEY".into(),
        "aW1hZ2UtdGVzdC1yb2NrZXQta2V5LTAxMjM0NTY3ODk=".into(),
    ));
    envs.push((
        "ROCKET_SECURITY".into(),
        r#"{secret_key="image-test-secret-key-0123456789",password_salt="image-test-salt-0123456789",public_url="https://auth.example.com"}"#
            .into(),
    ));
    envs.push((
        "ROCKET_MAIL".into(),
        r#"{transport="smtp",smtp_host="smtp.example.com",from="Example <no-reply@example.com>"}"#
            .into(),
    ));
    let server = Server::start_as(&envs, data.path(), is_root().then_some(uid));
    serves(&server, data.path());
    // The log is JSON, one object a line, as the image asks.
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("gatehouse ready"))
        .unwrap_or_default();
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_ok(),
        "{logs}"
    );
}

#[test]
fn the_shipped_nginx_config_is_valid() {
    let nginx = Path::new("/usr/sbin/nginx");
    assert!(
        nginx.exists(),
        "nginx is not installed: apt-get install nginx-light (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let cert = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=auth.example.com", "-keyout"])
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .output()
        .unwrap();
    assert!(
        cert.status.success(),
        "{}",
        String::from_utf8_lossy(&cert.stderr)
    );
    let site = shipped("nginx.conf")
        .replace(
            "/etc/letsencrypt/live/auth.example.com/fullchain.pem",
            &format!("{d}/cert.pem"),
        )
        .replace(
            "/etc/letsencrypt/live/auth.example.com/privkey.pem",
            &format!("{d}/key.pem"),
        );
    std::fs::write(dir.path().join("site.conf"), site).unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "pid {d}/nginx.pid; error_log {d}/error.log; events {{}}
             http {{ access_log off; client_body_temp_path {d}/b; proxy_temp_path {d}/p;
               fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
               include {d}/site.conf; }}"
        ),
    )
    .unwrap();
    let out = Command::new(nginx)
        .args(["-t", "-q", "-p", &d.to_string(), "-c"])
        .arg(dir.path().join("nginx.conf"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "nginx -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README shows the proxy setup that is shipped and tested.
#[test]
fn the_readme_shows_the_shipped_proxy_block() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let conf = shipped("nginx.conf");
    let begin = conf.find("# BEGIN gatehouse").unwrap();
    let end = conf.find("# END gatehouse").unwrap();
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squash(&readme).contains(&squash(&conf[begin..end])),
        "README.md's Deploy section must show deploy/nginx.conf's gatehouse block"
    );
}
