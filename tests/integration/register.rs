//! Item 2: register by JSON and by form, signed in at once.

use rocket::http::Status;
use serde_json::json;

use crate::common::*;

#[rocket::async_test]
async fn json_register_signs_in_and_returns_a_token_when_asked() {
    let app = app().await;
    let r = app
        .post_json(
            "/register?include_auth_token",
            json!({"email": "new@example.com", "password": "password1", "password_confirm": "password1"}),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{}", r.body);
    assert_eq!(r.json()["meta"]["code"], 200);
    assert!(r.json()["response"]["csrf_token"].is_string());
    let token = r.token();
    assert!(
        r.cookie("session").is_some(),
        "JSON register also sets the session"
    );
    assert!(r.cookie("XSRF-TOKEN").is_some());
    let me = app.get_with_token("/api/me", &token).await;
    assert_eq!(me.json()["email"], "new@example.com");

    // Without include_auth_token: no token, still signed in.
    let r = app
        .post_json(
            "/register",
            json!({"email": "two@example.com", "password": "password1", "password_confirm": "password1"}),
        )
        .await;
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.json()["response"]["user"], json!({}));
}

#[rocket::async_test]
async fn register_validation_in_field_order_with_exact_messages() {
    let app = app().await;
    let r = app.post_json("/register", json!({})).await;
    assert_eq!(r.status, Status::BadRequest);
    // The confirmation is required too, as FS's form says (oracle).
    assert_eq!(
        r.errors(),
        vec![
            "Email not provided",
            "Password not provided",
            "Password not provided"
        ]
    );
    assert_eq!(
        r.json()["response"]["field_errors"]["email"],
        json!(["Email not provided"])
    );

    let r = app
        .post_json(
            "/register",
            json!({"email": "not-an-email", "password": "short", "password_confirm": "other"}),
        )
        .await;
    assert_eq!(
        r.errors(),
        vec![
            "Invalid email address",
            "Password must be at least 8 characters",
            "Passwords do not match"
        ]
    );
    assert_eq!(
        r.json()["response"]["field_errors"],
        json!({"email": ["Invalid email address"], "password": ["Password must be at least 8 characters"],
               "password_confirm": ["Passwords do not match"]})
    );

    let long = "x".repeat(129);
    let r = app
        .post_json(
            "/register",
            json!({"email": "a@example.com", "password": long, "password_confirm": long}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.json()["response"]["field_errors"]["password"],
        json!(["Password must be at most 128 characters"])
    );
}

#[rocket::async_test]
async fn email_taken_in_any_case() {
    let app = app().await;
    app.user("taken@example.com").await;
    let r = app
        .post_json(
            "/register",
            json!({"email": "TAKEN@Example.com", "password": "password1", "password_confirm": "password1"}),
        )
        .await;
    assert_eq!(r.status, Status::BadRequest);
    assert_eq!(
        r.errors(),
        vec!["TAKEN@example.com is already associated with an account."]
    );
}

#[rocket::async_test]
async fn parallel_registrations_of_one_email_make_one_account() {
    let app = app().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        tasks.push(app.post_json(
            "/register",
            json!({"email": email, "password": "password1", "password_confirm": "password1"}),
        ));
    }
    let results = futures_join_all(tasks).await;
    let ok = results.iter().filter(|r| r.status == Status::Ok).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        results
            .iter()
            .map(|r| (r.status, &r.body))
            .collect::<Vec<_>>()
    );
    assert!(results
        .iter()
        .all(|r| r.status == Status::Ok || r.status == Status::BadRequest));
    assert_eq!(app.dbh().list_users().await.unwrap().len(), 1);
}

/// Minimal join_all so the suite needs no futures crate.
pub async fn futures_join_all<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = fs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[rocket::async_test]
async fn form_register_redirects_signed_in_and_rerenders_on_error() {
    let app = app().await;
    let mut b = Browser::default();
    let page = b.send(app.client.get("/register")).await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.text().contains("name=\"csrf_token\""));
    assert!(page.text().contains("autocomplete=\"new-password\""));

    let bad = b
        .submit(
            &app.client,
            "/register",
            &[
                ("email", "x@example.com"),
                ("password", "password1"),
                ("password_confirm", "nope"),
            ],
        )
        .await;
    assert_eq!(bad.status, Status::Ok);
    assert!(bad.text().contains("Passwords do not match"));
    assert!(bad.text().contains("value=\"x@example.com\""), "email kept");

    let ok = b
        .submit(
            &app.client,
            "/register",
            &[
                ("email", "x@example.com"),
                ("password", "password1"),
                ("password_confirm", "password1"),
                ("next", "/api/me"),
            ],
        )
        .await;
    assert_eq!(ok.status, Status::Found, "{}", ok.body);
    assert_eq!(ok.location(), "/api/me");
    let me = b.send(app.client.get("/api/me")).await;
    assert_eq!(me.status, Status::Ok);
    assert_eq!(me.json()["email"], "x@example.com");

    // Signed in now: register is anonymous-only.
    let again = b
        .send(json_body(
            app.client.post("/register").header(rocket::http::Header::new("X-XSRF-Token", b.xsrf())),
            json!({"email": "y@example.com", "password": "password1", "password_confirm": "password1"}),
        ))
        .await;
    assert_eq!(again.status, Status::BadRequest);
    assert_eq!(
        again.errors(),
        vec!["You can only access this endpoint when not logged in."]
    );
}

#[rocket::async_test]
async fn register_can_be_turned_off() {
    let app = app_with(|f| f.merge(("security.registerable", false))).await;
    let r = app
        .post_json("/register", json!({"email": "n@example.com", "password": "password1", "password_confirm": "password1"}))
        .await;
    assert_eq!(r.status, Status::NotFound);
}
