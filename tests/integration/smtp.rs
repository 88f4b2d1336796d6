//! Issue 12, sending: the outbox delivers to a real SMTP server (aiosmtpd,
//! tests/smtp/sink.py) with AUTH and with STARTTLS against a private CA;
//! it survives a server that is down and delivers when it is back; two
//! instances on one database send each mail once.

use std::time::{Duration, Instant};

use rocket::figment::Figment;
use rocket::http::Status;
use serde_json::json;

use crate::common::*;
use crate::mailbox::{wait_for_async, Sink};
use crate::process::free_port;

fn smtp(f: Figment, port: u16) -> Figment {
    f.merge(("mail.transport", "smtp"))
        .merge(("mail.smtp_host", "127.0.0.1"))
        .merge(("mail.smtp_port", port))
        .merge(("mail.smtp_security", "none"))
        .merge(("mail.from", "Gatehouse Test <no-reply@example.com>"))
}

async fn ask_reset(client: &rocket::local::asynchronous::Client, email: &str) {
    let r = send(json_body(client.post("/reset"), json!({ "email": email })).remote(peer())).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
}

#[rocket::async_test]
async fn mail_goes_to_a_real_smtp_server_with_auth() {
    let sink = Sink::start_on(
        free_port(),
        &["--user", "mailer", "--password", "s3cret-pass"],
    );
    let port = sink.port;
    let app = app_with(move |f| {
        smtp(f, port)
            .merge(("mail.smtp_username", "mailer"))
            .merge(("mail.smtp_password", "s3cret-pass"))
    })
    .await;
    app.user("smtp@example.com").await;
    ask_reset(&app.client, "smtp@example.com").await;
    let mails = wait_for_async(sink.path(), 1).await;
    assert_eq!(mails[0].subject, "Password reset instructions");
    assert!(mails[0].to.contains("smtp@example.com"));
    assert!(mails[0].link_path().starts_with("/reset/"));
    let envelope = sink.envelope(1);
    assert_eq!(envelope["auth"], true, "{envelope}");
    assert_eq!(envelope["from"], "no-reply@example.com");
    // The link from the SMTP server works.
    let r = app
        .post_json(
            &mails[0].link_path(),
            json!({"password": "via smtp 123", "password_confirm": "via smtp 123"}),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
}

#[rocket::async_test]
async fn starttls_is_required_and_a_private_ca_is_trusted() {
    // A private CA and a server certificate it signs, for 127.0.0.1.
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let (ca, ca_key, cert, key, csr, ext) = (
        p("ca.pem"),
        p("ca.key"),
        p("cert.pem"),
        p("key.pem"),
        p("req.csr"),
        p("ext.cnf"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let steps: [Vec<&str>; 3] = [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Test CA",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    ];
    for args in steps {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sink = Sink::start_on(
        free_port(),
        &[
            "--cert",
            &cert,
            "--key",
            &key,
            "--user",
            "mailer",
            "--password",
            "tls-pass",
        ],
    );
    let port = sink.port;
    let app = app_with(move |f| {
        smtp(f, port)
            .merge(("mail.smtp_security", "starttls"))
            .merge(("mail.smtp_ca_file", ca.clone()))
            .merge(("mail.smtp_username", "mailer"))
            .merge(("mail.smtp_password", "tls-pass"))
    })
    .await;
    app.user("tls@example.com").await;
    ask_reset(&app.client, "tls@example.com").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::mailbox::all(sink.path()).is_empty() {
        let (_, _, error) = row(&app, "tls@example.com").await;
        assert!(error.is_none(), "{error:?}");
        assert!(Instant::now() < deadline, "no mail");
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let envelope = sink.envelope(1);
    assert_eq!(envelope["tls"], true, "{envelope}");
    assert_eq!(envelope["auth"], true, "{envelope}");
}

/// The outbox row of the mail to `to`: (attempts, sent, error).
async fn row(app: &TestApp, to: &str) -> (i32, bool, Option<String>) {
    const SQL: &str =
        "SELECT attempts, sent_at IS NOT NULL, last_error FROM gh_outbox WHERE recipient = $1";
    crate::on_pool!(app, p => sqlx::query_as(SQL).bind(to).fetch_one(p).await.unwrap())
}

#[rocket::async_test]
async fn a_mail_server_that_is_down_fails_no_request_and_gets_the_mail_later() {
    let port = free_port();
    let app = app_with(move |f| smtp(f, port).merge(("mail.smtp_timeout_ms", 2_000))).await;
    app.user("patient@example.com").await;
    let started = Instant::now();
    ask_reset(&app.client, "patient@example.com").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the request does not wait for SMTP"
    );
    // The first attempt fails and is scheduled again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (attempts, sent, error) = row(&app, "patient@example.com").await;
        assert!(!sent);
        if let (1.., Some(error)) = (attempts, error) {
            assert!(error.contains("SMTP"), "the reason is kept: {error}");
            break;
        }
        assert!(Instant::now() < deadline, "no attempt was made");
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server comes up; once the retry is due, the mail goes out.
    let sink = Sink::start_on(port, &[]);
    rocket::tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        crate::mailbox::all(sink.path()).len(),
        0,
        "not before its time"
    );
    app.clock.advance(Duration::from_secs(31));
    let mails = wait_for_async(sink.path(), 1).await;
    assert_eq!(mails.len(), 1);
    // The server has it; the worker marks it sent once the server said so.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (attempts, sent, _) = row(&app, "patient@example.com").await;
        if sent {
            assert_eq!(attempts, 2);
            break;
        }
        assert!(Instant::now() < deadline, "never marked sent");
        rocket::tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[rocket::async_test]
async fn two_instances_on_one_database_send_each_mail_once() {
    let sink = Sink::start();
    let port = sink.port;
    let app = app_with(move |f| smtp(f, port)).await;
    let other = client_on(&app.db.url, move |f| {
        smtp(f, port).merge(("mail.poll_interval_ms", 50))
    })
    .await;
    const N: usize = 30;
    for i in 0..N {
        app.user(&format!("twin{i}@example.com")).await;
    }
    for i in 0..N {
        let client = if i % 2 == 0 { &app.client } else { &other };
        ask_reset(client, &format!("twin{i}@example.com")).await;
    }
    let mails = wait_for_async(sink.path(), N).await;
    rocket::tokio::time::sleep(Duration::from_millis(600)).await;
    let mails_after = crate::mailbox::all(sink.path());
    assert_eq!(mails_after.len(), N, "no duplicates arrive later");
    let mut to: Vec<String> = mails.iter().map(|m| m.to.clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), N, "each address once");
    drop(other);
}
