//! Issue 12: account recovery by email. Forgot password, confirm email,
//! change email and the security notices, on the local client with the
//! file transport (each app writes its mails to its own folder).

use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::common::*;
use crate::mailbox::{all, expect_mail, wait_for_async};

const RESET_SUBJECT: &str = "Password reset instructions";
const NEW_PASSWORD: &str = "a brand new password";

async fn reset_link(app: &TestApp, email: &str) -> crate::mailbox::Mail {
    let r = app.post_json("/reset", json!({ "email": email })).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    expect_mail(app.mail.path(), email, RESET_SUBJECT).await
}

#[rocket::async_test]
async fn a_forgotten_password_is_reset_by_mail_and_the_old_sessions_die() {
    let app = app().await;
    app.user("forgot@example.com").await;
    let old_token = app.login_token("forgot@example.com", PASSWORD).await;
    let browser = app.browser_login("forgot@example.com", PASSWORD).await;

    let mail = reset_link(&app, "forgot@example.com").await;
    assert!(
        mail.text.contains("This link will expire in 1 day"),
        "{}",
        mail.text
    );
    assert!(mail.html.contains("Reset your password"), "{}", mail.html);
    let link = mail.link_path();
    assert!(link.starts_with("/reset/"), "{link}");
    // Links start with the public URL, never with the request's Host.
    assert!(
        mail.links()[0].starts_with("http://127.0.0.1:8000/reset/"),
        "{:?}",
        mail.links()
    );

    // The link opens the form; FS's password rules apply.
    let r = send(accept_json(app.client.get(link.clone()))).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let r = app
        .post_json(
            &link,
            json!({"password": "short", "password_confirm": "short"}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(r.errors(), ["Password must be at least 8 characters"]);
    let r = app
        .post_json(
            &link,
            json!({"password": NEW_PASSWORD, "password_confirm": "other password"}),
        )
        .await;
    assert_eq!(
        r.json()["response"]["field_errors"]["password_confirm"][0],
        "Passwords do not match"
    );

    // Set: signed in at once, with a token when asked.
    let r = app
        .post_json(
            &format!("{link}?include_auth_token"),
            json!({"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(r.json()["response"]["tf_required"], false);
    let new_token = r.token();
    assert_eq!(
        app.get_with_token("/api/me", &new_token).await.status,
        Status::Ok
    );

    // Every old session and token is dead.
    assert_eq!(
        app.get_with_token("/api/me", &old_token).await.status,
        Status::Unauthorized
    );
    let mut browser = browser;
    let r = browser.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(r.status, Status::Unauthorized);

    // The link works once.
    let r = app
        .post_json(
            &link,
            json!({"password": "yet another one", "password_confirm": "yet another one"}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(r.errors(), ["Invalid reset password token."]);
    assert_eq!(
        r.json()["response"]["field_errors"][""][0],
        "Invalid reset password token."
    );

    // The old password is gone, the new one works, and a notice went out.
    let r = app.post_json("/login", wrong("forgot@example.com")).await;
    assert_eq!(r.status, Status::BadRequest);
    app.login_token("forgot@example.com", NEW_PASSWORD).await;
    let notice = expect_mail(
        app.mail.path(),
        "forgot@example.com",
        "Your password has been reset",
    )
    .await;
    assert!(notice.text.contains("When:"), "{}", notice.text);
    assert!(
        notice.text.contains("/reset"),
        "what to do if it was not them: {}",
        notice.text
    );
}

#[rocket::async_test]
async fn the_answer_never_tells_whether_the_email_has_an_account() {
    let app = app().await;
    app.user("known@example.com").await;
    let known = app
        .post_json("/reset", json!({"email": "known@example.com"}))
        .await;
    let unknown = app
        .post_json("/reset", json!({"email": "unknown@example.com"}))
        .await;
    assert_eq!(known.status, unknown.status);
    let shape = |r: &Resp| {
        let mut v = r.json();
        v["response"]["csrf_token"] = json!("<csrf>");
        v
    };
    assert_eq!(shape(&known), shape(&unknown));
    assert_eq!(
        shape(&known),
        json!({"meta": {"code": 200}, "response": {"csrf_token": "<csrf>"}})
    );
    // Only the known address gets a mail; the other row is dropped.
    expect_mail(app.mail.path(), "known@example.com", RESET_SUBJECT).await;
    rocket::tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(all(app.mail.path())
        .iter()
        .all(|m| !m.to.contains("unknown@")));

    // A malformed or missing email is still a plain input error.
    let r = app
        .post_json("/reset", json!({"email": "not-an-email"}))
        .await;
    assert_eq!(r.errors(), ["Invalid email address"]);
    let r = app.post_json("/reset", json!({})).await;
    assert_eq!(r.errors(), ["Email not provided"]);
    let r = app.post_json("/reset", json!({"email": 5})).await;
    assert_eq!(r.errors(), ["Input not appropriate for requested API"]);
}

#[rocket::async_test]
async fn an_expired_link_says_so_and_offers_a_new_one() {
    let app = app().await;
    app.user("late@example.com").await;
    let link = reset_link(&app, "late@example.com").await.link_path();
    app.clock.advance(std::time::Duration::from_secs(86_401));
    let r = app
        .post_json(
            &link,
            json!({"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.errors(),
        ["You did not reset your password within 1 day. "]
    );
    // A browser sees why, and the form that sends a new link.
    let r = send(app.client.get(link)).await;
    assert_eq!(r.status, Status::BadRequest);
    assert!(
        r.body
            .contains("You did not reset your password within 1 day."),
        "{}",
        r.body
    );
    assert!(r.body.contains("Send me a link"), "{}", r.body);
    // The password did not change.
    app.login_token("late@example.com", PASSWORD).await;
}

#[rocket::async_test]
async fn a_link_dies_once_the_password_changes_any_other_way() {
    let app = app().await;
    let user = app.user("moved@example.com").await;
    let link = reset_link(&app, "moved@example.com").await.link_path();
    // A new hash without a new fs_uniquifier (FS 5.9.2 would still take
    // the link: it ignores the hash element).
    let hash = app
        .sec()
        .hasher
        .hash(&gatehouse::core::password::normalize("changed elsewhere"))
        .await
        .unwrap();
    app.dbh().set_password_hash(user.id, &hash).await.unwrap();
    let r = app
        .post_json(
            &link,
            json!({"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(r.errors(), ["Invalid reset password token."]);
    // Tampered or foreign links are refused the same way.
    for bad in ["/reset/garbage", &format!("{link}x")] {
        let r = app
            .post_json(
                bad,
                json!({"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}),
            )
            .await;
        assert_eq!(r.errors(), ["Invalid reset password token."], "{bad}");
    }
}

#[rocket::async_test]
async fn one_address_gets_a_few_link_mails_an_hour_and_no_more() {
    let app = app_with(|f| f.merge(("security.metrics_token", "scrape-token-0123456789"))).await;
    app.user("bombed@example.com").await;
    for _ in 0..5 {
        let r = app
            .post_json("/reset", json!({"email": "bombed@example.com"}))
            .await;
        assert_eq!(r.status, Status::Ok, "the same answer when limited");
    }
    wait_for_async(app.mail.path(), 3).await;
    rocket::tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(all(app.mail.path()).len(), 3, "three an hour");
    let m = send(app.client.get("/metrics").header(Header::new(
        "Authorization",
        "Bearer scrape-token-0123456789",
    )))
    .await;
    assert!(
        m.body
            .contains("gatehouse_limit_hits_total{scope=\"mail\"} 2"),
        "{}",
        m.body
    );
    // An hour later it may ask again.
    app.clock.advance(std::time::Duration::from_secs(3_601));
    app.post_json("/reset", json!({"email": "bombed@example.com"}))
        .await;
    wait_for_async(app.mail.path(), 4).await;
}

#[rocket::async_test]
async fn the_browser_walks_the_forms() {
    let app = app().await;
    app.user("walk@example.com").await;
    let login = send(app.client.get("/login")).await;
    assert!(
        login.body.contains(r#"href="/reset""#),
        "Forgot your password? on the login page"
    );

    let mut b = Browser::default();
    let page = b.send(app.client.get("/reset")).await;
    assert_eq!(page.status, Status::Ok);
    let r = b
        .submit(&app.client, "/reset", &[("email", "walk@example.com")])
        .await;
    assert_eq!(r.status, Status::Ok);
    assert!(
        r.body
            .contains("a link to choose a new password is on its way"),
        "{}",
        r.body
    );
    // Without the CSRF token the form is refused.
    let r = b
        .send(form_body(
            app.client.post("/reset"),
            &[("email", "walk@example.com")],
        ))
        .await;
    assert_eq!(r.status, Status::BadRequest);

    let link = expect_mail(app.mail.path(), "walk@example.com", RESET_SUBJECT)
        .await
        .link_path();
    let page = b.send(app.client.get(link.clone())).await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains("Choose a new password"), "{}", page.body);
    let r = b
        .submit(
            &app.client,
            &link,
            &[
                ("password", NEW_PASSWORD),
                ("password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, Status::Found, "{}", r.body);
    assert_eq!(r.location(), "/");
    let me = b.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(me.status, Status::Ok, "signed in by the reset");
}

#[rocket::async_test]
async fn confirmable_accounts_sign_in_once_the_link_is_followed() {
    let app = app_with(|f| f.merge(("security.confirmable", true))).await;
    let r = app
        .post_json(
            "/register?include_auth_token",
            json!({"email": "new@example.com", "password": PASSWORD, "password_confirm": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    // FS's answer: the account exists, nobody is signed in, no token.
    let v = r.json();
    assert_eq!(v["response"]["user"], json!({}));
    assert!(v["response"].get("tf_required").is_none());
    // Not signed in, and not tracked as a sign-in.
    let mut b = Browser::default();
    let r = b
        .send(json_body(
            app.client.post("/register"),
            json!({"email": "second@example.com", "password": PASSWORD, "password_confirm": PASSWORD}),
        ))
        .await;
    assert_eq!(r.status, Status::Ok);
    let me = b.send(accept_json(app.client.get("/api/me"))).await;
    assert_eq!(me.status, Status::Unauthorized, "not signed in");
    let pending = app
        .sec()
        .find_user("new@example.com")
        .await
        .unwrap()
        .unwrap();
    let tracked = app.dbh().tracking(pending.id).await.unwrap().unwrap();
    assert_eq!(tracked.login_count.unwrap_or(0), 0, "not a sign-in yet");

    let r = app
        .post_json(
            "/login",
            json!({"email": "new@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.json()["response"]["field_errors"]["email"][0],
        "Email requires confirmation."
    );
    // The wrong password is still the generic failure (checked first).
    let r = app.post_json("/login", wrong("new@example.com")).await;
    assert_eq!(r.errors(), [gatehouse::core::msg::LOGIN_FAILED]);

    let mail = expect_mail(app.mail.path(), "new@example.com", "Welcome").await;
    let link = mail.link_path();
    assert!(link.starts_with("/confirm/"), "{link}");
    let r = send(accept_json(app.client.get(link.clone()))).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    app.login_token("new@example.com", PASSWORD).await;

    // Again: already confirmed (a browser is told so on the login page).
    let r = send(accept_json(app.client.get(link.clone()))).await;
    assert_eq!(r.errors(), ["Your email has already been confirmed."]);
    let r = send(app.client.get(link)).await;
    assert_eq!(r.status, Status::Found);
    assert_eq!(r.location(), "/login");

    // Asking for a new link answers the same for anyone; a confirmed
    // account gets no mail.
    let before = all(app.mail.path()).len();
    let r = app
        .post_json("/confirm", json!({"email": "new@example.com"}))
        .await;
    assert_eq!(r.status, Status::Ok);
    let r = app
        .post_json("/confirm", json!({"email": "nobody@example.com"}))
        .await;
    assert_eq!(r.status, Status::Ok);
    rocket::tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(all(app.mail.path()).len(), before);
}

#[rocket::async_test]
async fn a_confirmation_link_is_for_one_address_and_expires() {
    let app = app_with(|f| f.merge(("security.confirmable", true))).await;
    let user = app.user("c@example.com").await;
    let r = app
        .post_json("/confirm", json!({"email": "c@example.com"}))
        .await;
    assert_eq!(r.status, Status::Ok);
    let link = expect_mail(
        app.mail.path(),
        "c@example.com",
        "Please confirm your email",
    )
    .await
    .link_path();
    // For another address of the same account: refused.
    let other = gatehouse::db::User {
        email: "other@example.com".into(),
        ..user.clone()
    };
    let forged = app.sec().links.mint_confirm(&other, app.sec().now() as u64);
    let r = send(accept_json(app.client.get(format!("/confirm/{forged}")))).await;
    assert_eq!(r.errors(), ["Invalid confirmation token."]);
    app.clock
        .advance(std::time::Duration::from_secs(2 * 86_400 + 1));
    let r = send(accept_json(app.client.get(link.clone()))).await;
    assert_eq!(
        r.errors(),
        ["You did not confirm your email within 2 days. "]
    );
    let page = send(app.client.get(link)).await;
    assert!(
        page.body.contains("Send me a new link"),
        "a new one is offered"
    );
}

#[rocket::async_test]
async fn with_login_without_confirmation_a_new_account_signs_in_at_once() {
    let app = app_with(|f| {
        f.merge(("security.confirmable", true))
            .merge(("security.login_without_confirmation", true))
    })
    .await;
    let r = app
        .post_json(
            "/register?include_auth_token",
            json!({"email": "eager@example.com", "password": PASSWORD, "password_confirm": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.json()["response"]["tf_required"], false);
    r.token();
    expect_mail(app.mail.path(), "eager@example.com", "Welcome").await;
}

#[rocket::async_test]
async fn the_email_changes_only_when_the_new_address_follows_its_link() {
    let app = app().await;
    app.user("old@example.com").await;
    app.user("taken@example.com").await;
    let token = app.login_token("old@example.com", PASSWORD).await;
    let r = app.get_with_token("/change-email", &token).await;
    assert_eq!(r.json()["response"]["current_email"], "old@example.com");

    let post = |email: &str| {
        send(
            token_header(app.client.post("/change-email"), &token)
                .header(ContentType::JSON)
                .body(json!({ "email": email }).to_string()),
        )
    };
    let r = post("TAKEN@example.com").await;
    assert_eq!(
        r.errors(),
        ["TAKEN@example.com is already associated with an account."]
    );
    let r = post("old@example.com").await;
    assert_eq!(r.status, Status::BadRequest, "their own address");
    let r = post("new.address@example.com").await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(r.json()["response"]["current_email"], "old@example.com");
    // Nothing changed yet.
    app.login_token("old@example.com", PASSWORD).await;

    let mail = expect_mail(
        app.mail.path(),
        "new.address@example.com",
        "Confirm your new email address",
    )
    .await;
    assert!(mail
        .text
        .contains("Your currently registered email is old@example.com"));
    let link = mail.link_path();
    let r = send(accept_json(app.client.get(link.clone()))).await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);

    // The new address signs in, the old one does not; the token lives on.
    app.login_token("new.address@example.com", PASSWORD).await;
    let r = app
        .post_json(
            "/login",
            json!({"email": "old@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        app.get_with_token("/api/me", &token).await.status,
        Status::Ok
    );
    let moved = app
        .sec()
        .find_user("new.address@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(
        app.dbh().is_confirmed(moved.id).await.unwrap(),
        "confirmed, as FS does"
    );

    // The old address hears about it; the link works once.
    let notice = expect_mail(
        app.mail.path(),
        "old@example.com",
        "Your email address has been changed",
    )
    .await;
    assert!(
        notice.text.contains("new.address@example.com"),
        "{}",
        notice.text
    );
    let r = send(accept_json(app.client.get(link))).await;
    assert_eq!(r.status, Status::BadRequest);
}

#[rocket::async_test]
async fn a_new_address_taken_in_the_meantime_is_refused() {
    let app = app().await;
    app.user("first@example.com").await;
    let token = app.login_token("first@example.com", PASSWORD).await;
    let r = send(
        token_header(app.client.post("/change-email"), &token)
            .header(ContentType::JSON)
            .body(json!({"email": "race@example.com"}).to_string()),
    )
    .await;
    assert_eq!(r.status, Status::Ok);
    let link = expect_mail(
        app.mail.path(),
        "race@example.com",
        "Confirm your new email address",
    )
    .await
    .link_path();
    app.user("race@example.com").await;
    let r = send(accept_json(app.client.get(link))).await;
    assert_eq!(r.status, Status::BadRequest);
    app.login_token("first@example.com", PASSWORD).await;
    // And an expired one says so.
    let r = send(
        token_header(app.client.post("/change-email"), &token)
            .header(ContentType::JSON)
            .body(json!({"email": "later@example.com"}).to_string()),
    )
    .await;
    assert_eq!(r.status, Status::Ok);
    let link = expect_mail(
        app.mail.path(),
        "later@example.com",
        "Confirm your new email address",
    )
    .await
    .link_path();
    app.clock.advance(std::time::Duration::from_secs(7_201));
    let r = send(accept_json(app.client.get(link))).await;
    assert_eq!(
        r.errors(),
        ["Confirmation must be completed within 2 hours. Please start over."]
    );
}

#[rocket::async_test]
async fn a_password_change_is_announced_with_where_it_came_from() {
    let app = app().await;
    app.user("told@example.com").await;
    let token = app.login_token("told@example.com", PASSWORD).await;
    let r = send(
        token_header(app.client.post("/change"), &token)
            .header(ContentType::JSON)
            .header(Header::new("User-Agent", "TestBrowser/1.0"))
            .remote(peer())
            .body(
                json!({"password": PASSWORD, "new_password": NEW_PASSWORD,
                       "new_password_confirm": NEW_PASSWORD})
                .to_string(),
            ),
    )
    .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let notice = expect_mail(
        app.mail.path(),
        "told@example.com",
        "Your password has been changed",
    )
    .await;
    assert!(notice.text.contains("TestBrowser/1.0"), "{}", notice.text);
    assert!(
        notice.text.contains(&peer().ip().to_string()),
        "{}",
        notice.text
    );
    assert!(
        notice
            .text
            .contains("If it was not you, reset your password now"),
        "{}",
        notice.text
    );
}

#[rocket::async_test]
async fn features_that_are_off_are_not_served() {
    let app = app_with(|f| {
        f.merge(("security.recoverable", false))
            .merge(("security.change_email", false))
    })
    .await;
    for path in [
        "/reset",
        "/reset/x",
        "/confirm",
        "/confirm/x",
        "/change-email",
        "/change-email/x",
    ] {
        let r = send(accept_json(app.client.get(path))).await;
        assert_eq!(r.status, Status::NotFound, "{path}");
    }
    let login = send(app.client.get("/login")).await;
    assert!(!login.body.contains(r#"href="/reset""#));
}

#[rocket::async_test]
async fn a_sign_in_from_a_new_browser_is_announced_once() {
    let app = app_with(|f| f.merge(("security.notify_new_browser", true))).await;
    app.user("seen@example.com").await;
    let subject = "New sign-in to your account";
    let count = |app: &TestApp| {
        all(app.mail.path())
            .iter()
            .filter(|m| m.subject == subject)
            .count()
    };
    let mut b = app.browser_login("seen@example.com", PASSWORD).await;
    expect_mail(app.mail.path(), "seen@example.com", subject).await;
    assert_eq!(count(&app), 1);
    // The same browser again (signed out, its marks kept): known.
    b.jar.retain(|c| c.name() == "gh_seen");
    assert_eq!(b.jar.len(), 1, "the browser keeps its mark");
    let r = b
        .send(json_body(
            app.client.post("/login"),
            json!({"email": "seen@example.com", "password": PASSWORD}),
        ))
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    rocket::tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(count(&app), 1, "a known browser is not announced");
    // Another browser: announced.
    app.browser_login("seen@example.com", PASSWORD).await;
    wait_for_async(app.mail.path(), 2).await;
    assert_eq!(count(&app), 2);
    // A made-up mark does not pass for a known browser.
    let mut forged = Browser::default();
    forged
        .jar
        .push(rocket::http::Cookie::new("gh_seen", "0".repeat(24)));
    forged
        .send(json_body(
            app.client.post("/login"),
            json!({"email": "seen@example.com", "password": PASSWORD}),
        ))
        .await;
    wait_for_async(app.mail.path(), 3).await;
    assert_eq!(count(&app), 3);
}

/// The security review of issue 12: a change of email needs a recent
/// sign-in (FS's freshness), so a stolen old session or token cannot move
/// the account to another mailbox; /verify makes it fresh again.
#[rocket::async_test]
async fn changing_the_email_needs_a_recent_sign_in() {
    let app = app_with(|f| {
        f.merge(("security.freshness", 3_600))
            .merge(("security.token_max_age", 7 * 86_400))
            .merge(("security.remember_max_age", 7 * 86_400))
    })
    .await;
    app.user("stale@example.com").await;
    let token = app.login_token("stale@example.com", PASSWORD).await;
    let mut b = app.browser_login("stale@example.com", PASSWORD).await;
    let ask = |token: &str| {
        send(
            token_header(app.client.post("/change-email"), token)
                .header(ContentType::JSON)
                .body(json!({"email": "thief@example.com"}).to_string()),
        )
    };
    assert_eq!(ask(&token).await.status, Status::Ok, "fresh at first");
    app.clock.advance(std::time::Duration::from_secs(3_601));
    let r = ask(&token).await;
    assert_eq!(r.status, Status::Unauthorized, "{}", r.body);
    assert_eq!(r.json()["response"]["reauth_required"], true);
    assert_eq!(
        r.errors(),
        ["You must reauthenticate to access this endpoint"]
    );
    let r = send(accept_json(token_header(
        app.client.get("/change-email"),
        &token,
    )))
    .await;
    assert_eq!(r.status, Status::Unauthorized);
    // A browser is sent to /verify and back.
    let page = b.send(app.client.get("/change-email")).await;
    assert_eq!(page.status, Status::Found);
    assert_eq!(page.location(), "/verify?next=/change-email");
    // Proving the password again makes the session fresh.
    let r = b
        .send(
            json_body(app.client.post("/verify"), json!({"password": PASSWORD}))
                .header(rocket::http::Header::new("X-CSRF-Token", b.xsrf())),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    let r = b
        .send(
            json_body(
                app.client.post("/change-email"),
                json!({"email": "mine@example.com"}),
            )
            .header(rocket::http::Header::new("X-CSRF-Token", b.xsrf())),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
}

/// Two uses of one reset link at the same time: one wins.
#[rocket::async_test]
async fn a_reset_link_works_once_even_twice_at_once() {
    let app = app().await;
    app.user("twice@example.com").await;
    let link = reset_link(&app, "twice@example.com").await.link_path();
    let (a, b) = rocket::tokio::join!(
        app.post_json(
            &link,
            json!({"password": "first new password", "password_confirm": "first new password"})
        ),
        app.post_json(
            &link,
            json!({"password": "second new password", "password_confirm": "second new password"})
        ),
    );
    let ok = [&a, &b].iter().filter(|r| r.status == Status::Ok).count();
    assert_eq!(ok, 1, "{} / {}", a.body, b.body);
    let winner = if a.status == Status::Ok {
        "first new password"
    } else {
        "second new password"
    };
    app.login_token("twice@example.com", winner).await;
}

/// Requests of one kind cannot use up another kind's mails: confirmation
/// requests for a confirmed account (never sent) leave the reset alone.
#[rocket::async_test]
async fn one_kind_of_mail_does_not_use_up_another() {
    let app = app_with(|f| f.merge(("security.confirmable", true))).await;
    let u = app.user("victim@example.com").await;
    app.sec().mark_confirmed(&u).await.unwrap();
    for _ in 0..5 {
        let r = app
            .post_json("/confirm", json!({"email": "victim@example.com"}))
            .await;
        assert_eq!(r.status, Status::Ok);
    }
    reset_link(&app, "victim@example.com").await;
}

/// Notices are limited too: a password changed in a loop does not flood
/// the mailbox; and the link's token stays out of the request log path.
#[rocket::async_test]
async fn notices_are_limited_per_address() {
    let app = app().await;
    app.user("loop@example.com").await;
    let mut password = PASSWORD.to_owned();
    for i in 0..5 {
        let token = app.login_token("loop@example.com", &password).await;
        let new = format!("looped password {i}");
        let r = send(
            token_header(app.client.post("/change"), &token)
                .header(ContentType::JSON)
                .body(
                    json!({"password": password, "new_password": new, "new_password_confirm": new})
                        .to_string(),
                ),
        )
        .await;
        assert_eq!(r.status, Status::Ok, "{}", r.body);
        password = new;
    }
    wait_for_async(app.mail.path(), 3).await;
    rocket::tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(all(app.mail.path()).len(), 3, "three notices an hour");
}

/// Housekeeping does not start a mail limit's hour over early (it purges
/// throttle rows after the longest window, not the account throttle's 15
/// minutes).
#[rocket::async_test]
async fn housekeeping_keeps_the_mail_limit_for_the_hour() {
    let app = app().await;
    app.user("hour@example.com").await;
    for _ in 0..2 {
        app.post_json("/reset", json!({"email": "hour@example.com"}))
            .await;
    }
    wait_for_async(app.mail.path(), 2).await;
    app.clock.advance(std::time::Duration::from_secs(20 * 60));
    app.sec().housekeeping().await.unwrap();
    for _ in 0..3 {
        app.post_json("/reset", json!({"email": "hour@example.com"}))
            .await;
    }
    wait_for_async(app.mail.path(), 3).await;
    rocket::tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(all(app.mail.path()).len(), 3, "still three in the hour");
}
