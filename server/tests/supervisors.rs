//! Supervisor accounts and sessions through the real router and the real binary, on SQLite and
//! PostgreSQL.

mod common;
mod database;

use axum::http::{Method, StatusCode};
use common::{Server, sha256_hex};
use database::{Backend, on_both_databases};
use linecheck_server::supervisors::add_supervisor;
use serde_json::{Value, json};
use std::io::Write;

const PASSWORD: &str = "correct horse battery";

fn error_of(json: &Value) -> &str {
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {json}"))
}

async fn a_supervisor_logs_in_sees_who_they_are_and_logs_out(backend: Backend) {
    let server = Server::start(backend).await;
    add_supervisor(&server.state.db.pool, "maria", PASSWORD, false)
        .await
        .unwrap();
    let body = json!({ "name": " maria ", "password": PASSWORD }).to_string();
    let (status, headers, json) = server
        .request(Method::POST, "/api/v1/session", &[], body)
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["supervisor"], "maria");
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap();
    let token = cookie.strip_prefix("linecheck_session=").unwrap();

    // Only the token's hash is stored.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_sha256 FROM supervisor_sessions")
        .fetch_all(&server.state.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, vec![sha256_hex(token.as_bytes())]);

    // Other cookies beside it do not confuse the extractor.
    let cookies = format!("theme=dark; {cookie}; lang=de");
    let (status, json) = server
        .as_supervisor(&cookies, Method::GET, "/api/v1/session", "")
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["supervisor"], "maria");
    assert!(json["expires_at"].is_string(), "{json}");

    let (status, headers, _) = server
        .request(Method::DELETE, "/api/v1/session", &[("cookie", cookie)], "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, json) = server
        .as_supervisor(cookie, Method::GET, "/api/v1/session", "")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&json).contains("log in again"), "{json}");
}

async fn passwords_are_stored_as_argon2_hashes_and_wrong_ones_are_refused(backend: Backend) {
    let server = Server::start(backend).await;
    add_supervisor(&server.state.db.pool, "maria", PASSWORD, false)
        .await
        .unwrap();
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM supervisors")
        .fetch_one(&server.state.db.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));

    // A wrong password and an unknown name get the same answer.
    for (name, password) in [("maria", "wrong password"), ("nobody", PASSWORD)] {
        let (status, json) = server.login(name, password).await.unwrap_err();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
        assert_eq!(error_of(&json), "wrong supervisor name or password");
    }

    // Too short, a name taken, and a replaced password that ends the old sessions.
    let err = add_supervisor(&server.state.db.pool, "short", "1234567", false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least 8 characters"), "{err}");
    let err = add_supervisor(&server.state.db.pool, "maria", "another password", false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--replace"), "{err}");
    let old_session = server.login("maria", PASSWORD).await.unwrap();
    add_supervisor(&server.state.db.pool, "maria", "another password", true)
        .await
        .unwrap();
    assert!(server.login("maria", PASSWORD).await.is_err());
    server.login("maria", "another password").await.unwrap();
    let (status, _) = server
        .as_supervisor(&old_session, Method::GET, "/api/v1/session", "")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn repeated_failed_logins_are_throttled_per_name(backend: Backend) {
    let server = Server::start(backend).await;
    for name in ["maria", "omar"] {
        add_supervisor(&server.state.db.pool, name, PASSWORD, false)
            .await
            .unwrap();
    }
    for _ in 0..5 {
        let (status, _) = server.login("maria", "guess").await.unwrap_err();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Even the right password waits now; another supervisor does not.
    let (status, json) = server.login("maria", PASSWORD).await.unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    assert!(error_of(&json).contains("too many failed logins"), "{json}");
    server.login("omar", PASSWORD).await.unwrap();
}

/// `GET /api/v1/session` with `cookie` (none when empty): the status and the error.
async fn whoami(server: &Server, cookie: String) -> (StatusCode, String) {
    let headers: Vec<(&str, &str)> = if cookie.is_empty() {
        vec![]
    } else {
        vec![("cookie", &cookie)]
    };
    let (status, _, json) = server
        .request(Method::GET, "/api/v1/session", &headers, "")
        .await;
    (status, error_of(&json).to_owned())
}

async fn missing_forged_and_expired_sessions_are_refused_with_the_reason(backend: Backend) {
    let server = Server::start(backend).await;
    let cookie = server.supervisor_session("maria", PASSWORD).await;
    let (status, reason) = whoami(&server, String::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(reason.contains("not logged in"), "{reason}");
    let (status, reason) = whoami(&server, format!("linecheck_session={}", "0".repeat(64))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(reason.contains("unknown or ended session"), "{reason}");
    // A station token is not a session.
    let station_token = server.enroll("ST-04").await;
    let (status, _) = whoami(&server, format!("linecheck_session={station_token}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    sqlx::query("UPDATE supervisor_sessions SET expires_at = '2020-01-01T00:00:00.000000Z'")
        .execute(&server.state.db.pool)
        .await
        .unwrap();
    let (status, reason) = whoami(&server, cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(reason.contains("expired"), "{reason}");
}

async fn login_refuses_malformed_json_wrong_types_and_oversized_bodies(backend: Backend) {
    let server = Server::start(backend).await;
    let login = |body: Vec<u8>| server.request(Method::POST, "/api/v1/session", &[], body);
    let cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"{\"name\": ".to_vec(), StatusCode::BAD_REQUEST, "EOF"),
        (
            br#"{"name": 7, "password": "x"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            br#"{"name": "maria"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            br#"{"name": "  ", "password": "x"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({ "name": "maria", "password": "x".repeat(2000) })
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            vec![b' '; 17 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "length limit",
        ),
    ];
    for (body, expected, mentions) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let (status, headers, json) = login(body).await;
        assert_eq!(status, expected, "{shown}: {json}");
        assert!(error_of(&json).contains(mentions), "{shown}: {json}");
        assert!(headers.get("set-cookie").is_none());
    }
}

/// `add-supervisor` through the real binary, with the password from stdin and from the
/// environment.
async fn add_supervisor_cli_reads_the_password_from_stdin_or_the_environment(backend: Backend) {
    let server = Server::start(backend).await;
    let command = |name: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_linecheck-server"));
        command
            .args(["add-supervisor", name, "--data-dir"])
            .arg(&server.data_dir)
            .env_remove("LINECHECK_SUPERVISOR_PASSWORD")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        match &server.database_url {
            Some(url) => command.env("LINECHECK_DATABASE_URL", url),
            None => command.env_remove("LINECHECK_DATABASE_URL"),
        };
        command
    };
    let run = |mut command: std::process::Command, stdin: &str| {
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };

    let output = run(command("maria"), &format!("{PASSWORD}\n"));
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("Supervisor maria added"));
    server.login("maria", PASSWORD).await.unwrap();

    let mut from_env = command("omar");
    from_env.env("LINECHECK_SUPERVISOR_PASSWORD", "from the environment");
    let output = run(from_env, "ignored\n");
    assert!(output.status.success(), "{output:?}");
    server.login("omar", "from the environment").await.unwrap();

    let output = run(command("lena"), "short\n");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 8 characters"), "{stderr}");
    let output = run(command("lena"), "");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no password given"), "{stderr}");
}

#[tokio::test]
async fn session_cookies_are_secure_when_the_server_speaks_tls() {
    let mut server = Server::start(Backend::Sqlite).await;
    server.use_secure_cookies();
    add_supervisor(&server.state.db.pool, "maria", PASSWORD, false)
        .await
        .unwrap();
    let body = json!({ "name": "maria", "password": PASSWORD }).to_string();
    let (status, headers, _) = server
        .request(Method::POST, "/api/v1/session", &[], body)
        .await;
    assert_eq!(status, StatusCode::OK);
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    assert!(set_cookie.ends_with("; Secure"), "{set_cookie}");
}

on_both_databases!(
    a_supervisor_logs_in_sees_who_they_are_and_logs_out,
    passwords_are_stored_as_argon2_hashes_and_wrong_ones_are_refused,
    repeated_failed_logins_are_throttled_per_name,
    missing_forged_and_expired_sessions_are_refused_with_the_reason,
    login_refuses_malformed_json_wrong_types_and_oversized_bodies,
    add_supervisor_cli_reads_the_password_from_stdin_or_the_environment,
);
