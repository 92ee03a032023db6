//! The second factor, attacked through real HTTP against the real cookie and session store:
//! enrolment takes effect only once confirmed, sign-in asks for the code, a code is accepted once,
//! recovery codes once each, wrong codes count towards the sign-in throttle (and a right password
//! does not clear them), a half-done sign-in is no session, and admins can be made to enrol.

#![allow(clippy::unwrap_used)]

use crate::support;

use ctguard_app::{
    account::{BeginSecondFactor, ConfirmSecondFactor, MyAccount, OwnAccount, RemoveSecondFactor},
    admin::users::ListAccounts,
    auth::Role,
};
use ctguard_server::db;
use leptos::server_fn::ServerFn;
use serde_json::json;
use support::{TestApp, live_status, location, password_of, spawn_app, spawn_app_with};

/// The code an authenticator app shows for `secret` at `at` (Unix seconds).
fn code_at(secret: &str, at: i64) -> String {
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(u64::try_from(at).unwrap())
        .to_string()
}

/// What the user's own account page reads.
async fn my_account(app: &TestApp, client: &reqwest::Client) -> OwnAccount {
    let response = app.post_form(client, MyAccount::PATH, &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Starts an enrolment; returns the secret.
async fn begin(app: &TestApp, client: &reqwest::Client) -> String {
    let response = app
        .post_json(client, BeginSecondFactor::PATH, &json!({}))
        .await;
    assert_eq!(response.status(), 200, "enrolment starts");
    let enrolment: serde_json::Value = response.json().await.unwrap();
    assert!(
        enrolment["qr_svg"].as_str().unwrap().contains("<svg"),
        "a QR code"
    );
    assert!(
        enrolment["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/ctguard:")
    );
    enrolment["secret"].as_str().unwrap().to_owned()
}

async fn confirm(app: &TestApp, client: &reqwest::Client, code: &str) -> reqwest::Response {
    app.post_json(client, ConfirmSecondFactor::PATH, &json!({ "code": code }))
        .await
}

/// Enrols the signed-in `client`'s user; returns the secret and the recovery codes. The clock
/// then moves on a step, as it would while the user walks away: the confirming code is spent.
async fn enrol(app: &TestApp, client: &reqwest::Client) -> (String, Vec<String>) {
    let secret = begin(app, client).await;
    let response = confirm(app, client, &code_at(&secret, app.clock.now())).await;
    assert_eq!(response.status(), 200, "confirmed");
    let codes: Vec<String> = response.json().await.unwrap();
    app.clock.advance(30);
    (secret, codes)
}

/// Posts the second step; returns where it leads.
async fn send_code(app: &TestApp, client: &reqwest::Client, code: &str) -> String {
    location(
        &app.post_form(client, "/auth/second-factor", &[("code", code)])
            .await,
    )
}

async fn audit_count(app: &TestApp, action: &str, outcome: &str) -> i64 {
    let pool = db::open(&app.database).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE action = ? AND outcome = ?")
        .bind(action)
        .bind(outcome)
        .fetch_one(&pool)
        .await
        .unwrap()
}

use ctguard_server::clock::Clock;

#[tokio::test]
async fn an_enrolment_takes_effect_only_once_confirmed_then_sign_in_asks_for_the_code() {
    let app = spawn_app().await;
    let vera = app.signed_in(Role::Viewer).await;
    let secret = begin(&app, &vera).await;

    // Not confirmed: signing in still needs the password alone.
    let other = app.browser();
    let response = app.sign_in(&other, "vera", &password_of("vera")).await;
    assert_eq!(
        location(&response),
        "/",
        "an unconfirmed secret asks nothing"
    );

    let wrong = confirm(&app, &vera, "000000").await;
    assert_eq!(wrong.status(), 400, "a wrong first code confirms nothing");
    assert!(!my_account(&app, &vera).await.second_factor);

    let (secret, recovery) = {
        let response = confirm(&app, &vera, &code_at(&secret, app.clock.now())).await;
        assert_eq!(response.status(), 200);
        let codes: Vec<String> = response.json().await.unwrap();
        (secret, codes)
    };
    assert_eq!(recovery.len(), 10, "ten recovery codes, shown once");
    let account = my_account(&app, &vera).await;
    assert!(account.second_factor);
    assert_eq!(account.recovery_codes_left, 10);
    assert_eq!(audit_count(&app, "second_factor.enrol", "success").await, 1);
    assert_eq!(audit_count(&app, "second_factor.enrol", "refused").await, 1);

    // The password alone is a pending sign-in now, not a session.
    app.clock.advance(30);
    let browser = app.browser();
    let response = app.sign_in(&browser, "vera", &password_of("vera")).await;
    assert_eq!(location(&response), "/login?step=code");
    assert_eq!(live_status(&app, &browser).await, 401, "no session yet");
    assert_eq!(
        send_code(&app, &browser, "123456").await,
        "/login?step=code&error=code",
        "a wrong code is refused"
    );
    assert_eq!(live_status(&app, &browser).await, 401);
    assert_eq!(
        send_code(&app, &browser, &code_at(&secret, app.clock.now())).await,
        "/"
    );
    assert_eq!(live_status(&app, &browser).await, 200, "signed in");
    assert_eq!(audit_count(&app, "login.second_factor", "refused").await, 1);
}

#[tokio::test]
async fn a_code_is_accepted_once_and_older_codes_never() {
    let app = spawn_app().await;
    let vera = app.signed_in(Role::Viewer).await;
    let (secret, _) = enrol(&app, &vera).await;
    let code = code_at(&secret, app.clock.now());

    let first = app.browser();
    app.sign_in(&first, "vera", &password_of("vera")).await;
    assert_eq!(send_code(&app, &first, &code).await, "/");

    // Replayed in the same step, by another browser that has the password too.
    let replay = app.browser();
    app.sign_in(&replay, "vera", &password_of("vera")).await;
    assert_eq!(
        send_code(&app, &replay, &code).await,
        "/login?step=code&error=code",
        "the same code twice"
    );
    // Within the skew window it still matches a step, but one already used up.
    app.clock.advance(30);
    assert_eq!(
        send_code(&app, &replay, &code).await,
        "/login?step=code&error=code",
        "an older code after a newer one"
    );
    assert_eq!(
        send_code(&app, &replay, &code_at(&secret, app.clock.now())).await,
        "/",
        "the next step's code"
    );
    assert_eq!(live_status(&app, &replay).await, 200);
}

#[tokio::test]
async fn each_recovery_code_signs_in_once() {
    let app = spawn_app().await;
    let vera = app.signed_in(Role::Viewer).await;
    let (_, recovery) = enrol(&app, &vera).await;

    let browser = app.browser();
    app.sign_in(&browser, "vera", &password_of("vera")).await;
    // Typed in capitals and without its dashes, it is the same code.
    let typed = recovery[3].to_ascii_uppercase().replace('-', "");
    assert_eq!(send_code(&app, &browser, &typed).await, "/");
    assert_eq!(my_account(&app, &browser).await.recovery_codes_left, 9);

    let again = app.browser();
    app.sign_in(&again, "vera", &password_of("vera")).await;
    assert_eq!(
        send_code(&app, &again, &recovery[3]).await,
        "/login?step=code&error=code",
        "spent"
    );
    assert_eq!(send_code(&app, &again, &recovery[4]).await, "/");
}

#[tokio::test]
async fn wrong_codes_count_towards_the_throttle_and_a_right_password_does_not_clear_them() {
    let app = spawn_app().await;
    let vera = app.signed_in(Role::Viewer).await;
    let (secret, _) = enrol(&app, &vera).await;

    // An attacker who has the password, from one address, with a fresh browser each time: the
    // password's attempt stays counted, so password, code, password, code… reaches the lock of
    // five attempts per account and address as wrong passwords would.
    for _ in 0..2 {
        let attacker = app.browser();
        let response = app.sign_in(&attacker, "vera", &password_of("vera")).await;
        assert_eq!(location(&response), "/login?step=code");
        assert_eq!(
            send_code(&app, &attacker, "111111").await,
            "/login?step=code&error=code"
        );
    }
    let attacker = app.browser();
    let response = app.sign_in(&attacker, "vera", &password_of("vera")).await;
    assert_eq!(location(&response), "/login?step=code", "the fifth attempt");
    assert_eq!(
        send_code(&app, &attacker, &code_at(&secret, app.clock.now())).await,
        "/login?step=code&error=throttled",
        "locked: even the right code is not checked"
    );
    let response = app
        .sign_in(&app.browser(), "vera", &password_of("vera"))
        .await;
    assert!(
        location(&response).contains("error=throttled"),
        "and the password form is locked too"
    );
    assert_eq!(live_status(&app, &attacker).await, 401);
    assert!(audit_count(&app, "login.second_factor", "refused").await >= 3);
}

#[tokio::test]
async fn a_pending_sign_in_expires_after_five_minutes_and_needs_a_password_first() {
    let app = spawn_app().await;
    let vera = app.signed_in(Role::Viewer).await;
    let (secret, _) = enrol(&app, &vera).await;

    let stranger = app.browser();
    assert_eq!(
        send_code(&app, &stranger, &code_at(&secret, app.clock.now())).await,
        "/login?error=expired&next=/",
        "a code without a password first"
    );

    let browser = app.browser();
    app.sign_in(&browser, "vera", &password_of("vera")).await;
    app.clock.advance(5 * 60);
    assert_eq!(
        send_code(&app, &browser, &code_at(&secret, app.clock.now())).await,
        "/login?error=expired&next=/"
    );
    assert_eq!(live_status(&app, &browser).await, 401);
}

#[tokio::test]
async fn when_required_an_admin_without_a_second_factor_can_only_enrol() {
    let app = spawn_app_with(|settings| settings.session.second_factor_for_admins = true).await;
    let ada = app.browser();
    let response = app.sign_in(&ada, "ada", &password_of("ada")).await;
    assert_eq!(location(&response), "/account", "sent to enrol");

    // Every other page leads back to the enrolment; every other call is refused and audited.
    let page = app.get(&ada, "/users").await;
    assert_eq!(page.status(), 303);
    assert_eq!(location(&page), "/account");
    let list = app.post_form(&ada, ListAccounts::PATH, &[]).await;
    assert_eq!(list.status(), 403);
    assert_eq!(live_status(&app, &ada).await, 403, "not even the live feed");
    let pool = db::open(&app.database).await.unwrap();
    let refused: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit WHERE action = 'forbidden' AND actor = 'ada'
         AND detail = 'a second factor must be enrolled first'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(refused, 1);
    assert!(my_account(&app, &ada).await.enrolment_due);

    let (secret, _) = enrol(&app, &ada).await;
    let list = app.post_form(&ada, ListAccounts::PATH, &[]).await;
    assert_eq!(list.status(), 200, "enrolled: the session may do its work");
    assert!(!my_account(&app, &ada).await.enrolment_due);

    // Required: it cannot be removed from the account page.
    let removal = app
        .post_json(
            &ada,
            RemoveSecondFactor::PATH,
            &json!({ "password": password_of("ada") }),
        )
        .await;
    assert_eq!(removal.status(), 400);
    assert!(my_account(&app, &ada).await.second_factor);

    // The next sign-in asks for the code; a viewer is not asked to enrol.
    let again = app.browser();
    let response = app.sign_in(&again, "ada", &password_of("ada")).await;
    assert_eq!(location(&response), "/login?step=code");
    assert_eq!(
        send_code(&app, &again, &code_at(&secret, app.clock.now())).await,
        "/"
    );
    let viewer = app.browser();
    let response = app.sign_in(&viewer, "vera", &password_of("vera")).await;
    assert_eq!(location(&response), "/");
}
