//! Issue 17, item 1: forward auth, proven with a real nginx (Debian's, with
//! `auth_request`) in front of a small backend that records every request
//! it gets. Anonymous requests never reach the backend; signed-in ones
//! arrive with the identity headers, which the client cannot forge; a
//! missing role is 403; sign out everywhere cuts them off on the next
//! request.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::process::{env, free_port, http, run, wait_until_listening, HttpResp, Process, Server};

const BACKEND: &str = r#"
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[2], "a") as f:
            f.write(self.path + "\n")
        body = json.dumps({"path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// The forward-auth block of deploy/nginx.conf, as shipped, in a server on
/// a loopback port, with its two upstreams pointing at the test's processes.
fn nginx_conf(dir: &std::path::Path, port: u16, gatehouse: u16, backend: u16) -> String {
    let d = dir.display();
    let shipped = include_str!("../../deploy/nginx.conf");
    let begin = shipped.find("# BEGIN gatehouse").expect("the BEGIN marker");
    let end = shipped.find("# END gatehouse").expect("the END marker");
    let block = &shipped[begin..end];
    format!(
        "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
         events {{ worker_connections 64; }}
         http {{ access_log off;
           client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
           fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
           upstream gatehouse {{ server 127.0.0.1:{gatehouse}; keepalive 4; }}
           upstream app {{ server 127.0.0.1:{backend}; }}
           server {{ listen 127.0.0.1:{port};
{block}
           }}
         }}"
    )
}

fn hits(file: &std::path::Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |s| s.lines().count())
}

fn body(r: &HttpResp) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {} {}", r.status, r.body))
}

#[test]
fn nginx_in_front_lets_only_signed_in_users_through() {
    let nginx = PathBuf::from("/usr/sbin/nginx");
    assert!(
        nginx.exists(),
        "nginx is not installed: apt-get install nginx-light (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("fwd.db").display());
    let e = env(&db, ",trusted_proxies=[\"127.0.0.1\"]");
    let gatehouse = Server::start(&e);

    let hits_file = dir.path().join("hits");
    let backend_port = free_port();
    let _backend = Process(
        Command::new("python3")
            .args(["-c", BACKEND, &backend_port.to_string()])
            .arg(&hits_file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(backend_port, || "the backend did not start".into());

    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        nginx_conf(dir.path(), port, gatehouse.port, backend_port),
    )
    .unwrap();
    let _nginx = Process(
        Command::new(&nginx)
            .args(["-p", &dir.path().display().to_string(), "-c"])
            .arg(&conf)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port, || "nginx did not start".into());
    let get = |path: &str, headers: &[(&str, &str)]| http(port, "GET", path, headers, "").unwrap();
    let json = [("Content-Type", "application/json")];

    // Two accounts, through nginx; one is an admin (gatehouse's CLI).
    let mut tokens = Vec::new();
    for email in ["user@example.com", "boss@example.com"] {
        let r = http(
            port,
            "POST",
            "/register?include_auth_token",
            &json,
            &format!(
                r#"{{"email":"{email}","password":"password1","password_confirm":"password1"}}"#
            ),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        tokens.push(
            body(&r)["response"]["user"]["authentication_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(run(&e, &["roles", "create", "admin"], "").status.success());
    assert!(run(&e, &["roles", "add", "boss@example.com", "admin"], "")
        .status
        .success());
    let (user, boss) = (&tokens[0], &tokens[1]);

    // Anonymous: to the login page with the way back, never to the backend.
    for headers in [
        vec![],
        vec![("Authentication-Token", "forged")],
        vec![("X-Auth-Email", "boss@example.com")],
    ] {
        let r = get("/app/hello?x=1", &headers);
        assert_eq!(r.status, 302, "{headers:?}: {}", r.body);
        assert_eq!(
            r.header("location"),
            Some("/login?next=%2Fapp%2Fhello%3Fx%3D1")
        );
    }
    assert_eq!(
        hits(&hits_file),
        0,
        "no anonymous request reached the backend"
    );

    // By token: the backend gets the identity, whatever the client claims.
    let r = get(
        "/app/hello",
        &[
            ("Authentication-Token", user),
            ("X-Auth-Email", "boss@example.com"),
            ("X-Auth-Roles", "admin"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = &body(&r)["headers"];
    assert_eq!(seen["x-auth-email"], "user@example.com");
    // No roles: nginx drops the empty header, and the forged one is gone.
    assert!(
        seen["x-auth-roles"].is_null() || seen["x-auth-roles"] == "",
        "{seen}"
    );
    assert!(seen["x-auth-user-id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));

    // By session cookie, signed in through nginx.
    let r = http(
        port,
        "POST",
        "/login",
        &json,
        r#"{"email":"user@example.com","password":"password1"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.cookie_pair("session").unwrap();
    let r = get("/app/page", &[("Cookie", &cookie)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(body(&r)["headers"]["x-auth-email"], "user@example.com");

    // A role per location: 403 without it, through with it.
    assert_eq!(
        get("/admin/panel", &[("Authentication-Token", user)]).status,
        403
    );
    let r = get("/admin/panel", &[("Authentication-Token", boss)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(body(&r)["headers"]["x-auth-roles"], "admin");

    // Sign out everywhere: cut off on the very next request.
    let before = hits(&hits_file);
    let r = http(
        port,
        "POST",
        "/logout-everywhere",
        &[("Authentication-Token", user)],
        "",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        get("/app/hello", &[("Authentication-Token", user)]).status,
        302
    );
    assert_eq!(get("/app/hello", &[("Cookie", &cookie)]).status, 302);
    assert_eq!(
        hits(&hits_file),
        before,
        "revoked requests never reached the backend"
    );
    assert_eq!(
        get("/app/hello", &[("Authentication-Token", boss)]).status,
        200
    );
}
