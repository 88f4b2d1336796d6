//! Issue 10: CSRF is one rule, enforced where authentication happens. These
//! tests walk the app's route table, so a route added later is covered
//! without touching them: every unsafe route, sent a request that a
//! signed-in browser's session cookie authenticates, is refused when it
//! carries no CSRF token (whatever body a cross-site page can send) or when
//! it comes from another site, and nothing is stored.

use rocket::http::{ContentType, Header, Method, Status};

use crate::common::*;

/// Everything a forged request could change, read straight from the
/// database: users (uniquifier, hash, sign-in count), roles, session
/// records, throttle rows and the demo's likes.
async fn snapshot(app: &TestApp) -> String {
    const USERS: &str = r#"SELECT id, email || ' ' || fs_uniquifier || ' ' || COALESCE(tf_primary_method, '-') || ' ' || COALESCE(tf_totp_secret, '-') || ' ' || COALESCE(mf_recovery_codes, '-'), COALESCE(password, ''), COALESCE(login_count, 0), active FROM "user" ORDER BY id"#;
    const SESSIONS: &str = "SELECT id_hash FROM gh_session ORDER BY id_hash";
    const THROTTLE: &str = "SELECT key, attempts FROM gh_throttle ORDER BY key";
    const COUNTS: &str =
        "SELECT (SELECT COUNT(*) FROM gh_article_like), (SELECT COUNT(*) FROM roles_users) + 1000 * (SELECT COUNT(*) FROM gh_outbox)";
    macro_rules! read {
        ($p:expr) => {{
            let users: Vec<(i32, String, String, i32, bool)> =
                sqlx::query_as(USERS).fetch_all($p).await.unwrap();
            let sessions: Vec<(String,)> = sqlx::query_as(SESSIONS).fetch_all($p).await.unwrap();
            let throttle: Vec<(String, i32)> =
                sqlx::query_as(THROTTLE).fetch_all($p).await.unwrap();
            let counts: (i64, i64) = sqlx::query_as(COUNTS).fetch_one($p).await.unwrap();
            format!("{users:?}\n{sessions:?}\n{throttle:?}\n{counts:?}")
        }};
    }
    crate::on_pool!(app, p => read!(p))
}

/// Every route whose method changes something, with its dynamic segments
/// filled in.
fn unsafe_routes(app: &TestApp) -> Vec<(Method, String)> {
    let mut out: Vec<(Method, String)> = app
        .client
        .rocket()
        .routes()
        .filter(|r| {
            !matches!(
                r.method,
                Method::Get | Method::Head | Method::Options | Method::Trace
            )
        })
        .map(|r| {
            let path = r
                .uri
                .path()
                .split('/')
                .map(|seg| if seg.starts_with('<') { "1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            (r.method, path)
        })
        .collect();
    out.sort_by(|a, b| (a.1.as_str(), a.0.as_str()).cmp(&(b.1.as_str(), b.0.as_str())));
    out.dedup();
    out
}

/// Plausible fields for any of the auth forms: were a request let through,
/// it would sign in, register, change the password or sign out.
fn fields(email: &str) -> Vec<(&'static str, String)> {
    vec![
        ("email", email.to_owned()),
        ("password", PASSWORD.to_owned()),
        ("password_confirm", PASSWORD.to_owned()),
        ("new_password", "a brand new horse".to_owned()),
        ("new_password_confirm", "a brand new horse".to_owned()),
        ("remember", "y".to_owned()),
        // Two-factor: turn it off, start an enrolment, send a code.
        ("setup", "disable".to_owned()),
        ("code", "123456".to_owned()),
    ]
}

fn urlencoded(fields: &[(&str, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn multipart(fields: &[(&str, String)]) -> (ContentType, String) {
    let boundary = "gh-boundary-7MA4YWxkTrZu0gW";
    let mut body = String::new();
    for (k, v) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let ct = ContentType::new("multipart", "form-data").with_params(("boundary", boundary));
    (ct, body)
}

/// A signed-in browser, a second account for sign-in probes, and a fresh
/// email for registration probes.
async fn setup() -> (TestApp, Browser) {
    // Every feature on, so every route is live.
    let app = app_with(|f| {
        f.merge(("security.confirmable", true))
            .merge(("security.login_without_confirmation", true))
    })
    .await;
    app.user("victim@example.com").await;
    app.user("other@example.com").await;
    let b = app.browser_login("victim@example.com", PASSWORD).await;
    // The victim has two-factor sign-in and recovery codes: a forged
    // "disable" or new set of codes would show in the snapshot.
    let stored = gatehouse::core::twofactor::write_secret(
        b"csrf-routes-key-1234",
        &app.sec().config.totp_secrets,
        "t",
    );
    crate::on_pool!(&app, p => sqlx::query(
        r#"UPDATE "user" SET tf_primary_method = 'authenticator', tf_totp_secret = $1,
           mf_recovery_codes = 'aaaa-bbbb-cccc' WHERE email = 'victim@example.com'"#)
        .bind(&stored).execute(p).await.map(|_| ()).unwrap());
    (app, b)
}

/// Refused: a CSRF or same-site refusal (400, 403), or, for a route that
/// no cookie authenticates (token introspection), 401.
fn refused(status: Status) -> bool {
    status == Status::BadRequest || status == Status::Forbidden || status == Status::Unauthorized
}

#[rocket::async_test]
async fn every_unsafe_route_refuses_a_cookie_request_without_a_csrf_token() {
    let (app, mut b) = setup().await;
    let routes = unsafe_routes(&app);
    assert!(
        routes.iter().any(|(_, p)| p == "/api/articles/1/likes")
            && routes.iter().any(|(_, p)| p == "/change")
            && routes.iter().any(|(_, p)| p == "/login"),
        "the walk sees the app's routes: {routes:?}"
    );
    let before = snapshot(&app).await;
    let mut sent = 0;
    for (method, path) in &routes {
        for email in ["other@example.com", "fresh@example.com"] {
            let f = fields(email);
            let (mp_type, mp_body) = multipart(&f);
            let bodies = [
                (ContentType::Form, urlencoded(&f)),
                (mp_type, mp_body),
                (ContentType::Plain, urlencoded(&f)),
                (ContentType::Plain, format!("{{\"email\":\"{email}\"}}")),
            ];
            for (ct, body) in bodies {
                let req = app
                    .client
                    .req(*method, path.clone())
                    .header(ct.clone())
                    .body(body);
                let r = b.send(req).await;
                assert!(
                    refused(r.status),
                    "{method} {path} as {ct} without a CSRF token: {} {}",
                    r.status,
                    r.body
                );
                sent += 1;
            }
            // Rocket's method override (honoured only as the first field): a
            // form POST that says it is another method reaches no handler
            // that changes anything.
            for claimed in ["PUT", "DELETE", "PATCH", "GET"] {
                let mut overridden = vec![("_method", claimed.to_owned())];
                overridden.extend(f.iter().cloned());
                let r = b
                    .send(form_body_owned(app.client.post(path.clone()), &overridden))
                    .await;
                assert!(
                    !r.status.class().is_success() || claimed == "GET",
                    "_method={claimed} on {path}: {}",
                    r.status
                );
                sent += 1;
            }
        }
    }
    assert!(sent >= routes.len() * 16);
    assert_eq!(snapshot(&app).await, before, "nothing was stored");
    // The probes rode on a live session all along.
    let r = b.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
}

#[rocket::async_test]
async fn every_unsafe_route_refuses_a_cross_site_cookie_request_even_with_the_token() {
    let (app, mut b) = setup().await;
    let xsrf = b.xsrf();
    let before = snapshot(&app).await;
    let cross_site = [
        vec![Header::new("Origin", "https://evil.example")],
        vec![Header::new("Origin", "null")],
        vec![
            Header::new("Origin", "http://127.0.0.1:8000"),
            Header::new("Host", "127.0.0.1:8001"),
        ],
        vec![Header::new("Sec-Fetch-Site", "cross-site")],
    ];
    for (method, path) in unsafe_routes(&app) {
        for headers in &cross_site {
            let f = fields("fresh@example.com");
            let mut req = app
                .client
                .req(method, path.clone())
                .header(ContentType::Form)
                .header(Header::new("X-XSRF-Token", xsrf.clone()))
                .body(format!("csrf_token={}&{}", enc(&xsrf), urlencoded(&f)));
            for h in headers {
                req = req.header(h.clone());
            }
            let r = b.send(accept_json(req)).await;
            assert_eq!(
                r.status,
                Status::Forbidden,
                "{method} {path} with {headers:?}: {}",
                r.body
            );
            assert_eq!(r.errors(), vec!["Cross-site request refused."]);
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing was stored");
}

#[rocket::async_test]
async fn same_site_requests_with_the_token_go_through() {
    let (app, mut b) = setup().await;
    let xsrf = b.xsrf();
    let ok = [
        vec![
            Header::new("Origin", "http://127.0.0.1:8000"),
            Header::new("Host", "127.0.0.1:8000"),
        ],
        vec![Header::new("Sec-Fetch-Site", "same-origin")],
        vec![],
    ];
    for (i, headers) in ok.iter().enumerate() {
        let mut req = app
            .client
            .post(format!("/api/articles/{}/likes", 50 + i))
            .header(Header::new("X-XSRF-Token", xsrf.clone()));
        for h in headers {
            req = req.header(h.clone());
        }
        let r = b.send(req).await;
        assert_eq!(r.status, Status::Created, "{headers:?}: {}", r.body);
    }
    // A configured trusted origin (an SPA on another host) is let through.
    let app2 = app_with(|f| {
        f.merge((
            "security.trusted_origins",
            vec!["https://app.example.com".to_owned()],
        ))
    })
    .await;
    app2.user("spa@example.com").await;
    let mut s = app2.browser_login("spa@example.com", PASSWORD).await;
    let r = s
        .send(
            app2.client
                .post("/api/articles/9/likes")
                .header(Header::new("X-XSRF-Token", s.xsrf()))
                .header(Header::new("Origin", "https://app.example.com")),
        )
        .await;
    assert_eq!(r.status, Status::Created, "{}", r.body);
}

#[rocket::async_test]
async fn a_token_request_needs_no_csrf_token_and_no_origin_check() {
    let (app, _) = setup().await;
    let token = app.login_token("other@example.com", PASSWORD).await;
    let r = send(token_header(
        app.client
            .post("/api/articles/3/likes")
            .header(ContentType::Form)
            .header(Header::new("Origin", "https://elsewhere.example"))
            .body("a=b"),
        &token,
    ))
    .await;
    assert_eq!(r.status, Status::Created, "{}", r.body);
}

fn form_body_owned<'a>(
    req: rocket::local::asynchronous::LocalRequest<'a>,
    fields: &[(&str, String)],
) -> rocket::local::asynchronous::LocalRequest<'a> {
    req.header(ContentType::Form).body(urlencoded(fields))
}

/// With `token_query_param` on, a cross-site form could name a token of the
/// attacker's own in its URL and so skip the CSRF and same-site rule (the
/// review of issue 10 found it: a login CSRF into the attacker's account).
/// A token in the URL counts on GET and HEAD only.
#[rocket::async_test]
async fn a_token_in_the_url_does_not_excuse_an_unsafe_request() {
    let app = app_with(|f| {
        f.merge(("security.token_query_param", "auth_token"))
            .merge(("security.confirmable", true))
            .merge(("security.login_without_confirmation", true))
    })
    .await;
    app.user("victim@example.com").await;
    app.user("attacker@example.com").await;
    let attacker = app.login_token("attacker@example.com", PASSWORD).await;
    let mut b = app.browser_login("victim@example.com", PASSWORD).await;
    let before = snapshot(&app).await;
    for (method, path) in unsafe_routes(&app) {
        let url = format!("{path}?auth_token={}", enc(&attacker));
        let f = fields("attacker@example.com");
        for origin in [None, Some("https://evil.example")] {
            let mut req = app
                .client
                .req(method, url.clone())
                .header(ContentType::Form)
                .body(urlencoded(&f));
            if let Some(o) = origin {
                req = req.header(Header::new("Origin", o));
            }
            let r = b.send(req).await;
            assert!(
                refused(r.status),
                "{method} {url} from {origin:?}: {} {}",
                r.status,
                r.body
            );
        }
    }
    assert_eq!(snapshot(&app).await, before, "nothing was stored");
    let me = b.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(
        me.json()["email"],
        "victim@example.com",
        "still the victim's session"
    );
    // On GET the URL token still works, as configured.
    let r = send(
        app.client
            .get(format!("/api/test?auth_token={}", enc(&attacker))),
    )
    .await;
    assert_eq!(r.status, Status::Ok);
}

/// A form refused for its CSRF token is shown again with the message, not
/// swapped for an error page (the review of issue 10).
#[rocket::async_test]
async fn a_form_refused_for_csrf_is_shown_again() {
    let (app, mut b) = setup().await;
    for (path, field) in [("/change", "new_password"), ("/verify", "password")] {
        let r = b
            .send(form_body(app.client.post(path), &[("password", PASSWORD)]))
            .await;
        assert_eq!(r.status, Status::BadRequest, "{path}");
        assert!(
            r.text().contains("The CSRF token is missing."),
            "{path}: {}",
            r.body
        );
        assert!(
            r.body.contains(&format!("name=\"{field}\"")),
            "{path}: the form again"
        );
    }
}

/// With Secure cookies the site is https: an http Origin for the same host
/// is another origin.
#[rocket::async_test]
async fn with_secure_cookies_an_http_origin_is_cross_site() {
    let app = app_with(|f| f.merge(("security.cookie_secure", true))).await;
    app.user("tls@example.com").await;
    let mut b = Browser::default();
    b.send(app.client.get("/login")).await;
    b.submit(
        &app.client,
        "/login",
        &[("email", "tls@example.com"), ("password", PASSWORD)],
    )
    .await;
    let like = |origin: &'static str, article: u32| {
        app.client
            .post(format!("/api/articles/{article}/likes"))
            .header(Header::new("Host", "auth.example.com"))
            .header(Header::new("Origin", origin))
    };
    let xsrf = b.xsrf();
    let r = b
        .send(accept_json(
            like("http://auth.example.com", 1).header(Header::new("X-XSRF-Token", xsrf.clone())),
        ))
        .await;
    assert_eq!(r.status, Status::Forbidden, "{}", r.body);
    let r = b
        .send(like("https://auth.example.com", 2).header(Header::new("X-XSRF-Token", xsrf)))
        .await;
    assert_eq!(r.status, Status::Created, "{}", r.body);
}
