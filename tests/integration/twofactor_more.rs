//! Issue 14, items 1 (the page), 4 to 7: the enrolment page with its QR
//! code, recovery codes (FS's storage, optionally Fernet-encrypted), the
//! rescue request, "remember this browser" (FS's tf_validity cookie), roles
//! that require two-factor sign-in, and the administrator's reset.

use std::time::Duration;

use rocket::http::Status;
use serde_json::json;

use crate::common::*;
use crate::twofactor::{code, code_step, enrolled, password_step, secrets};
use gatehouse::core::fernet::FernetKey;
use gatehouse::core::totp::{base32_decode, code_at};

/// A token for the enrolled account, through both steps.
async fn two_step_token(app: &TestApp) -> String {
    let (mut b, r) = password_step(app).await;
    assert_eq!(r.json()["response"]["tf_required"], true, "{}", r.body);
    let r = code_step(app, &mut b, &code(app)).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    // The next sign-in needs the next step's code (this one is used).
    app.clock.advance(Duration::from_secs(30));
    r.token()
}

async fn recovery_step(app: &TestApp, b: &mut Browser, code: &str) -> Resp {
    b.send(json_body(
        app.client.post("/mf-recovery?include_auth_token"),
        json!({ "code": code }),
    ))
    .await
}

async fn new_codes(app: &TestApp, token: &str) -> Vec<String> {
    let r = send(token_header(
        json_body(app.client.post("/mf-recovery-codes"), json!({})),
        token,
    ))
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    serde_json::from_value(r.json()["response"]["recovery_codes"].clone()).unwrap()
}

async fn stored_codes(app: &TestApp, email: &str) -> Option<String> {
    crate::on_pool!(app, p => sqlx::query_scalar::<_, Option<String>>(
        r#"SELECT mf_recovery_codes FROM "user" WHERE email = $1"#)
        .bind(email).fetch_one(p).await.unwrap())
}

#[rocket::async_test]
async fn a_recovery_code_signs_in_once_and_is_announced() {
    let app = enrolled(|f| f).await;
    let token = two_step_token(&app).await;
    let codes = new_codes(&app, &token).await;
    assert_eq!(codes.len(), 5);
    // FS's storage: the codes, comma-separated, in the clear by default.
    assert_eq!(
        stored_codes(&app, "tf@example.com").await.unwrap(),
        codes.join(",")
    );
    let r = send(accept_json(token_header(
        app.client.get("/mf-recovery-codes"),
        &token,
    )))
    .await;
    assert_eq!(r.json()["response"]["recovery_codes"], json!(codes));

    let (mut b, _) = password_step(&app).await;
    let r = b.send(accept_json(app.client.get("/tf-validate"))).await;
    assert_eq!(
        r.json()["response"]["recovery_options"]["recovery_code"],
        "/mf-recovery",
        "{}",
        r.body
    );
    let r = recovery_step(&app, &mut b, "0000-0000-0000").await;
    assert_eq!(r.errors(), ["Recovery code invalid"]);
    let r = recovery_step(&app, &mut b, &codes[0]).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(
        app.get_with_token("/api/me", &r.token()).await.status,
        Status::Ok
    );
    crate::mailbox::expect_mail(
        app.mail.path(),
        "tf@example.com",
        "A recovery code was used",
    )
    .await;

    // Used up: the same code again is refused; the others still work, as
    // typed by a person (capitals, spaces).
    let (mut b, _) = password_step(&app).await;
    let r = recovery_step(&app, &mut b, &codes[0]).await;
    assert_eq!(r.errors(), ["Recovery code invalid"]);
    let typed = format!("  {} ", codes[1].to_uppercase());
    let r = recovery_step(&app, &mut b, &typed).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(
        stored_codes(&app, "tf@example.com").await.unwrap(),
        codes[2..].join(",")
    );

    // A new set replaces the old one.
    let fresh = new_codes(&app, &token).await;
    let (mut b, _) = password_step(&app).await;
    assert_eq!(
        recovery_step(&app, &mut b, &codes[2]).await.errors(),
        ["Recovery code invalid"]
    );
    assert_eq!(
        recovery_step(&app, &mut b, &fresh[0]).await.status,
        Status::Ok
    );
}

#[rocket::async_test]
async fn recovery_codes_are_throttled_and_need_the_password_step() {
    let app = enrolled(|f| {
        f.merge(("security.account_limit", 3))
            .merge(("security.account_base_delay", 60))
            .merge(("security.account_max_delay", 60))
    })
    .await;
    let mut stranger = Browser::default();
    let r = recovery_step(&app, &mut stranger, "0000-0000-0000").await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(r.errors(), [gatehouse::core::msg::NO_CODE_EXPECTED]);
    let (mut b, _) = password_step(&app).await;
    let mut statuses = Vec::new();
    for guess in ["aaaa-aaaa-aaaa", "bbbb-bbbb-bbbb", "cccc-cccc-cccc"] {
        statuses.push(recovery_step(&app, &mut b, guess).await.status.code);
    }
    assert_eq!(statuses, [400, 400, 429]);
}

/// Two sign-ins with the same code at the same moment: one gets in.
#[rocket::async_test]
async fn a_recovery_code_used_twice_at_once_works_once() {
    let app = enrolled(|f| f).await;
    let token = two_step_token(&app).await;
    let codes = new_codes(&app, &token).await;
    let (mut a, _) = password_step(&app).await;
    let (mut b, _) = password_step(&app).await;
    let (ra, rb) = tokio::join!(
        recovery_step(&app, &mut a, &codes[3]),
        recovery_step(&app, &mut b, &codes[3])
    );
    let mut statuses = [ra.status.code, rb.status.code];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{} / {}", ra.body, rb.body);
    assert_eq!(
        stored_codes(&app, "tf@example.com")
            .await
            .unwrap()
            .split(',')
            .count(),
        4
    );
}

#[rocket::async_test]
async fn recovery_codes_need_a_recent_sign_in() {
    let app = enrolled(|f| f.merge(("security.freshness", 600))).await;
    let token = two_step_token(&app).await;
    new_codes(&app, &token).await;
    app.clock.advance(Duration::from_secs(601));
    let get = send(accept_json(token_header(
        app.client.get("/mf-recovery-codes"),
        &token,
    )))
    .await;
    assert_eq!(get.status, Status::Unauthorized);
    assert_eq!(get.json()["response"]["reauth_required"], true);
    let post = send(token_header(
        json_body(app.client.post("/mf-recovery-codes"), json!({})),
        &token,
    ))
    .await;
    assert_eq!(post.status, Status::Unauthorized);
}

/// FS's MULTI_FACTOR_RECOVERY_CODES_KEYS: each code stored as a Fernet
/// token under the first key; older keys still open what they made.
#[rocket::async_test]
async fn recovery_codes_are_stored_encrypted_with_fernet_keys() {
    let k1 = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    let k2 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let app = enrolled(|f| f.merge(("security.recovery_codes_keys", vec![k1]))).await;
    let token = two_step_token(&app).await;
    let codes = new_codes(&app, &token).await;
    let stored = stored_codes(&app, "tf@example.com").await.unwrap();
    let key = FernetKey::parse(k1).unwrap();
    let plain: Vec<String> = stored
        .split(',')
        .map(|t| {
            assert!(t.starts_with("gAAAAA"), "a Fernet token: {t}");
            String::from_utf8(key.decrypt(t, 0, None).unwrap()).unwrap()
        })
        .collect();
    assert_eq!(plain, codes);

    // The same database under a new primary key (k2, then k1): the codes
    // made under k1 still work.
    let again = client_on_clock(
        &app.db.url,
        |f| {
            f.merge(("security.totp_secrets", secrets()))
                .merge(("security.recovery_codes_keys", vec![k2, k1]))
        },
        app.clock.clone(),
    )
    .await;
    let mut b = Browser::default();
    b.send(json_body(
        again.post("/login"),
        json!({"email": "tf@example.com", "password": PASSWORD}),
    ))
    .await;
    let r = b
        .send(json_body(
            again.post("/mf-recovery"),
            json!({"code": codes[0]}),
        ))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    // Without the key, the codes cannot be read: none is offered.
    let keyless = client_on_clock(
        &app.db.url,
        |f| {
            f.merge(("security.totp_secrets", secrets()))
                .merge(("security.recovery_codes_keys", vec![k2]))
        },
        app.clock.clone(),
    )
    .await;
    let mut b = Browser::default();
    b.send(json_body(
        keyless.post("/login"),
        json!({"email": "tf@example.com", "password": PASSWORD}),
    ))
    .await;
    let r = b
        .send(json_body(
            keyless.post("/mf-recovery"),
            json!({"code": codes[1]}),
        ))
        .await;
    assert_eq!(r.errors(), ["Recovery code invalid"]);
}

/// FS's tf_validity cookie: with TWO_FACTOR_ALWAYS_VALIDATE off, a sign-in
/// with "remember me" lets this browser skip the code for 30 days, until
/// the account signs out everywhere.
#[rocket::async_test]
async fn a_remembered_browser_skips_the_code() {
    let app = enrolled(|f| f.merge(("security.two_factor_always_validate", false))).await;
    let login = |b: &mut Browser, remember: bool| {
        let req = json_body(
            app.client.post("/login?include_auth_token"),
            json!({"email": "tf@example.com", "password": PASSWORD, "remember": remember}),
        );
        let mut b2 = b.clone();
        async move {
            let r = b2.send(req).await;
            (b2, r)
        }
    };
    // Without "remember me": no cookie.
    let (mut b, _) = login(&mut Browser::default(), false).await;
    let r = code_step(&app, &mut b, &code(&app)).await;
    assert!(r.cookie("tf_validity").is_none(), "{:?}", r.set_cookies());
    app.clock.advance(Duration::from_secs(30));

    let (mut b, _) = login(&mut Browser::default(), true).await;
    let r = code_step(&app, &mut b, &code(&app)).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let raw = r.raw_cookie("tf_validity");
    assert!(raw.contains("HttpOnly"), "{raw}");
    assert!(raw.contains("SameSite=Strict"), "{raw}");
    let cookie = r.cookie("tf_validity").unwrap().clone();

    // A new browser session with that cookie: the password alone.
    let mut remembered = Browser {
        jar: vec![cookie.clone()],
    };
    let (_, r) = login(&mut remembered, false).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(r.json()["response"]["tf_required"], false, "{}", r.body);
    let token = r.token();
    // A wrong password still fails, cookie or not.
    let r = remembered
        .send(json_body(
            app.client.post("/login"),
            json!({"email": "tf@example.com", "password": "wrong password"}),
        ))
        .await;
    assert_eq!(r.status, Status::BadRequest);

    // Signing out everywhere forgets every remembered browser.
    let r = send(token_header(
        json_body(app.client.post("/logout-everywhere"), json!({})),
        &token,
    ))
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let mut remembered = Browser { jar: vec![cookie] };
    let (_, r) = login(&mut remembered, false).await;
    assert_eq!(r.json()["response"]["tf_required"], true, "{}", r.body);
}

#[rocket::async_test]
async fn remembering_expires_and_is_off_by_default() {
    let app = enrolled(|f| f.merge(("security.two_factor_always_validate", false))).await;
    let (mut b, _) = {
        let mut b = Browser::default();
        let r = b
            .send(json_body(
                app.client.post("/login"),
                json!({"email": "tf@example.com", "password": PASSWORD, "remember": true}),
            ))
            .await;
        (b, r)
    };
    let r = code_step(&app, &mut b, &code(&app)).await;
    let cookie = r.cookie("tf_validity").expect("remembered").clone();
    app.clock.advance(Duration::from_secs(30 * 86_400 + 60));
    let mut later = Browser { jar: vec![cookie] };
    let r = later
        .send(json_body(
            app.client.post("/login"),
            json!({"email": "tf@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(r.json()["response"]["tf_required"], true, "expired");

    // FS's default (TWO_FACTOR_ALWAYS_VALIDATE): a valid cookie is ignored.
    let strict = client_on_clock(
        &app.db.url,
        |f| f.merge(("security.totp_secrets", secrets())),
        app.clock.clone(),
    )
    .await;
    let user = app
        .dbh()
        .user_by_uniquifier(&uniquifier(&app, "tf@example.com").await)
        .await
        .unwrap()
        .unwrap();
    let fresh = app.sec().remember_browser(&user, true);
    let mut b = Browser {
        jar: vec![rocket::http::Cookie::new("tf_validity", fresh.unwrap())],
    };
    let r = b
        .send(json_body(
            strict.post("/login"),
            json!({"email": "tf@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(r.json()["response"]["tf_required"], true, "{}", r.body);
}

/// security.two_factor_required_roles: an admin without two-factor
/// sign-in is sent to enrol at the next sign-in (FS's setup_from_login),
/// and is signed in once the first code is right.
#[rocket::async_test]
async fn a_role_that_requires_two_factor_enrols_at_sign_in() {
    let app = app_with(|f| {
        f.merge(("security.totp_secrets", secrets()))
            .merge(("security.two_factor_required_roles", vec!["admin"]))
    })
    .await;
    app.user_with("boss@example.com", PASSWORD, &["admin"])
        .await;
    app.user("staff@example.com").await;
    app.login_token("staff@example.com", PASSWORD).await;

    let mut b = Browser::default();
    let r = b
        .send(json_body(
            app.client.post("/login?include_auth_token"),
            json!({"email": "boss@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(r.json()["response"]["tf_required"], true);
    assert_eq!(r.json()["response"]["tf_state"], "setup_from_login");
    assert!(r.json()["response"].get("user").is_none(), "{}", r.body);
    let me = b.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(me.status, Status::Unauthorized, "not signed in yet");
    // Turning it off is not for a sign-in under way.
    let r = b
        .send(json_body(
            app.client.post("/tf-setup"),
            json!({"setup": "disable"}),
        ))
        .await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);

    let r = b
        .send(json_body(
            app.client.post("/tf-setup"),
            json!({"setup": "authenticator"}),
        ))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let key = base32_decode(r.json()["response"]["tf_authr_b32key"].as_str().unwrap()).unwrap();
    let r = code_step(&app, &mut b, "000000").await;
    assert_eq!(r.errors(), ["Invalid code"]);
    // FS clients send the first code to /tf-validate.
    let r = code_step(&app, &mut b, &code_at(&key, app.sec().now() as u64)).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(
        app.get_with_token("/api/me", &r.token()).await.status,
        Status::Ok
    );
    // A role that requires it: it cannot be turned off.
    let token = r.token();
    let r = send(accept_json(token_header(
        app.client.get("/tf-setup"),
        &token,
    )))
    .await;
    assert_eq!(
        r.json()["response"]["tf_available_methods"],
        json!(["authenticator"])
    );
    assert_eq!(r.json()["response"]["tf_required"], true);
    let r = send(token_header(
        json_body(app.client.post("/tf-setup"), json!({"setup": "disable"})),
        &token,
    ))
    .await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
    // From now on, a code at every sign-in.
    app.clock.advance(Duration::from_secs(30));
    let r = app
        .post_json(
            "/login",
            json!({"email": "boss@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.json()["response"]["tf_state"], "ready", "{}", r.body);
}

/// The same journey in a browser: the setup page draws the QR code on the
/// server, shows the key as text, and signs in after the first code.
#[rocket::async_test]
async fn the_setup_page_enrols_a_browser() {
    let app = app_with(|f| {
        f.merge(("security.totp_secrets", secrets()))
            .merge(("security.two_factor_required_roles", vec!["admin"]))
    })
    .await;
    app.user_with("boss@example.com", PASSWORD, &["admin"])
        .await;
    let mut b = Browser::default();
    b.send(app.client.get("/login")).await;
    let r = b
        .submit(
            &app.client,
            "/login",
            &[
                ("email", "boss@example.com"),
                ("password", PASSWORD),
                ("next", "/account"),
            ],
        )
        .await;
    assert_eq!(r.status, Status::Found, "{}", r.body);
    assert_eq!(r.location(), "/tf-setup?next=%2Faccount");
    let page = b.send(app.client.get("/tf-setup?next=/account")).await;
    assert_eq!(page.status, Status::Ok, "{}", page.body);
    assert!(page.body.contains(r#"id="tf-must""#), "{}", page.body);
    // Each form is sent as the browser sends it: with the CSRF token the
    // page carries in its hidden field.
    let r = submit_page(
        &mut b,
        &app,
        &page.body,
        "/tf-setup",
        &[("setup", "authenticator"), ("next", "/account")],
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert!(r.body.contains("<svg"), "a QR code drawn here: {}", r.body);
    assert!(!r.body.contains("<script"), "{}", r.body);
    let (key, action) = setup_form(&r.body);
    let r = submit_page(
        &mut b,
        &app,
        &r.body,
        &action,
        &[("code", "123456"), ("next", "/account")],
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert!(r.body.contains("Invalid code"), "{}", r.body);
    assert_eq!(
        setup_form(&r.body),
        (key.clone(), action.clone()),
        "same key"
    );
    // Another state token than the one this sign-in started: refused.
    let boss = uniquifier(&app, "boss@example.com").await;
    let boss = app.dbh().user_by_uniquifier(&boss).await.unwrap().unwrap();
    let other = app.sec().start_enrolment(&boss).await.unwrap();
    let other_code = code_at(
        &base32_decode(&other.b32key).unwrap(),
        app.sec().now() as u64,
    );
    let r = submit_page(
        &mut b,
        &app,
        &r.body,
        &format!("/tf-setup/{}", other.state_token),
        &[("code", &other_code)],
    )
    .await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
    let first = code_at(&key, app.sec().now() as u64);
    let page = b.send(app.client.get("/tf-setup")).await;
    let r = submit_page(
        &mut b,
        &app,
        &page.body,
        &action,
        &[("code", &first), ("next", "/account")],
    )
    .await;
    assert_eq!(r.status, Status::Found, "{}", r.body);
    assert_eq!(r.location(), "/account");
    let account = b.send(app.client.get("/account")).await;
    assert_eq!(account.status, Status::Ok);
    let page = b.send(app.client.get("/tf-setup")).await;
    assert!(
        page.body.contains("is <strong>on</strong>"),
        "{}",
        page.body
    );
}

/// Posts a form of `page` as a browser does: its fields plus the CSRF
/// token in the page's hidden `csrf_token` field.
async fn submit_page(
    b: &mut Browser,
    app: &TestApp,
    page: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> Resp {
    let marker = r#"name="csrf_token" value=""#;
    let i = page
        .find(marker)
        .unwrap_or_else(|| panic!("a CSRF field in {page}"))
        + marker.len();
    let csrf = page[i..].split('"').next().unwrap().to_owned();
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    b.send(form_body(app.client.post(path.to_owned()), &all))
        .await
}

/// The key shown as text and the form's action on the enrolment page.
fn setup_form(page: &str) -> (Vec<u8>, String) {
    let after = |marker: &str, end: char| {
        let i = page
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} in {page}"))
            + marker.len();
        page[i..].split(end).next().unwrap().to_owned()
    };
    let key = base32_decode(&after(r#"<code id="tf-key">"#, '<')).unwrap();
    (
        key,
        format!("/tf-setup/{}", after(r#"action="/tf-setup/"#, '"')),
    )
}

async fn uniquifier(app: &TestApp, email: &str) -> String {
    crate::on_pool!(app, p => sqlx::query_scalar::<_, String>(
        r#"SELECT fs_uniquifier FROM "user" WHERE email = $1"#)
        .bind(email).fetch_one(p).await.unwrap())
}

#[rocket::async_test]
async fn a_signed_in_user_turns_it_on_and_off_in_the_browser() {
    let app = app_with(|f| f.merge(("security.totp_secrets", secrets()))).await;
    app.user("web@example.com").await;
    let mut b = Browser::default();
    b.send(app.client.get("/login")).await;
    let r = b
        .submit(
            &app.client,
            "/login",
            &[("email", "web@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, Status::Found, "{}", r.body);
    let page = b.send(app.client.get("/tf-setup")).await;
    assert!(page.body.contains(r#"id="tf-start""#), "{}", page.body);
    let r = b
        .submit(&app.client, "/tf-setup", &[("setup", "authenticator")])
        .await;
    let (key, action) = setup_form(&r.body);
    let r = b
        .submit(
            &app.client,
            &action,
            &[("code", &code_at(&key, app.sec().now() as u64))],
        )
        .await;
    assert_eq!(r.status, Status::Found, "{}", r.body);
    assert_eq!(r.location(), "/tf-setup");
    let page = b.send(app.client.get("/tf-setup")).await;
    assert!(
        page.body.contains("Two-factor sign-in is on"),
        "flash: {}",
        page.body
    );
    let r = b
        .submit(&app.client, "/tf-setup", &[("setup", "disable")])
        .await;
    assert_eq!(r.status, Status::Found, "{}", r.body);
    let page = b.send(app.client.get("/tf-setup")).await;
    assert!(
        page.body.contains("is <strong>off</strong>"),
        "{}",
        page.body
    );
}

/// Support: a lost phone. The administrator's reset takes the second
/// factor and the recovery codes away and signs the user out everywhere.
#[rocket::async_test]
async fn an_administrator_resets_two_factor() {
    let app = enrolled(|f| f).await;
    let token = two_step_token(&app).await;
    new_codes(&app, &token).await;
    let (user, had) = gatehouse::core::admin::reset_two_factor(app.sec(), "TF@example.com")
        .await
        .unwrap();
    assert!(had);
    assert_eq!(user.email, "tf@example.com");
    assert_eq!(
        app.get_with_token("/api/me", &token).await.status,
        Status::Unauthorized,
        "signed out everywhere"
    );
    assert_eq!(stored_codes(&app, "tf@example.com").await, None);
    app.login_token("tf@example.com", PASSWORD).await;
    crate::mailbox::expect_mail(
        app.mail.path(),
        "tf@example.com",
        "Two-factor sign-in is off",
    )
    .await;
    let (_, had) = gatehouse::core::admin::reset_two_factor(app.sec(), "tf@example.com")
        .await
        .unwrap();
    assert!(!had);
}

/// FS's /tf-rescue "help": a mail to the people who run the server.
#[rocket::async_test]
async fn the_code_page_can_ask_for_help() {
    let app = enrolled(|f| f.merge(("security.two_factor_rescue_mail", "help@example.com"))).await;
    let (mut b, _) = password_step(&app).await;
    let r = b.send(accept_json(app.client.get("/tf-validate"))).await;
    assert_eq!(
        r.json()["response"]["recovery_options"],
        json!({"help": "/tf-rescue"}),
        "no recovery codes yet"
    );
    let r = b
        .send(json_body(
            app.client.post("/tf-rescue"),
            json!({"help_setup": "recovery_code"}),
        ))
        .await;
    assert_eq!(r.status, Status::BadRequest, "no codes: {}", r.body);
    let r = b
        .send(json_body(
            app.client.post("/tf-rescue"),
            json!({"help_setup": "help"}),
        ))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let mail = crate::mailbox::expect_mail(
        app.mail.path(),
        "help@example.com",
        "Two-factor help requested",
    )
    .await;
    assert!(mail.text.contains("tf@example.com"), "{}", mail.text);
    let mut stranger = Browser::default();
    let r = stranger
        .send(json_body(
            app.client.post("/tf-rescue"),
            json!({"help_setup": "help"}),
        ))
        .await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
}

/// An account that has not confirmed its email stops at the password, as
/// in FS: no code step, no enrolment, no token.
#[rocket::async_test]
async fn unconfirmed_accounts_stop_before_the_second_step() {
    let app = enrolled(|f| {
        f.merge(("security.confirmable", true))
            .merge(("security.two_factor_required_roles", vec!["admin"]))
    })
    .await;
    let (_, r) = password_step(&app).await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
    assert_eq!(
        r.json()["response"]["field_errors"]["email"][0],
        gatehouse::core::msg::CONFIRMATION_REQUIRED
    );
    app.user_with("boss@example.com", PASSWORD, &["admin"])
        .await;
    let r = app
        .post_json(
            "/login",
            json!({"email": "boss@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest, "{}", r.body);
    assert!(r.json()["response"].get("tf_state").is_none(), "{}", r.body);
}
