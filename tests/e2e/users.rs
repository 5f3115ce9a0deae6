//! Users and access keys made at run time with `quarry admin user|key ...`: they sign
//! requests at once, survive kill -9, and stop working when disabled or deleted; their
//! secrets are shown once and never written in the clear.

use crate::harness::*;

/// Runs `quarry admin <args>` against `server` as `access_key`; (success, stdout, stderr).
fn admin_as(server: &Server, access_key: &str, secret_key: &str, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .arg("admin")
        .args(args)
        .args(["--endpoint", server.endpoint()])
        .env("QUARRY_ACCESS_KEY", access_key)
        .env("QUARRY_SECRET_KEY", secret_key)
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[track_caller]
fn admin_ok(server: &Server, args: &[&str]) -> String {
    let (ok, stdout, stderr) = admin_as(server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, args);
    assert!(ok, "quarry admin {args:?}: expected success, got\nstdout: {stdout}\nstderr: {stderr}");
    stdout
}

#[track_caller]
fn admin_refused(server: &Server, args: &[&str], code: &str) {
    let (ok, stdout, stderr) = admin_as(server, ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, args);
    assert!(
        !ok && stderr.contains(code),
        "quarry admin {args:?}: expected {code}, got\nstdout: {stdout}\nstderr: {stderr}"
    );
}

/// `quarry admin key create <user>`: (access key, secret).
fn new_key(server: &Server, user: &str) -> (String, String) {
    let stdout = admin_ok(server, &["key", "create", user]);
    let answer: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("key create printed no JSON ({e}): {stdout}"));
    let field = |name: &str| answer[name].as_str().unwrap_or_else(|| panic!("no {name} in {stdout}")).to_owned();
    assert_eq!(field("user"), user);
    (field("access_key"), field("secret_key"))
}

fn users_listed(server: &Server) -> serde_json::Value {
    let stdout = admin_ok(server, &["user", "list"]);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("user list printed no JSON ({e}): {stdout}"))
}

fn listed_user(list: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    list["users"].as_array().unwrap().iter().find(|u| u["name"] == name).cloned()
}

/// A request signed by the key works (true) or is refused as an unknown key (false).
async fn key_works(server: &Server, access_key: &str, secret_key: &str) -> bool {
    match server.client_with(access_key, secret_key).list_buckets().send().await {
        Ok(_) => true,
        Err(e) => {
            let status = err_status(&e);
            let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e).map(str::to_owned);
            assert_eq!(
                (status, code.as_deref()),
                (Some(403), Some("InvalidAccessKeyId")),
                "a refused key: expected 403 InvalidAccessKeyId"
            );
            false
        }
    }
}

#[tokio::test]
async fn users_and_keys_made_at_run_time_work_at_once_and_survive_kill9() {
    let mut server =
        Server::start_with(ServerOptions { config_toml: Some(TWO_OWNERS_CONFIG.into()), ..Default::default() });
    admin_ok(&server, &["user", "create", "carol"]);
    admin_refused(&server, &["user", "create", "carol"], "EntityAlreadyExists");
    admin_refused(&server, &["user", "create", "alicekey"], "EntityAlreadyExists"); // a config user
    admin_refused(&server, &["user", "create", "no/slash"], "InvalidArgument");
    let (key1, secret1) = new_key(&server, "carol");
    let (key2, secret2) = new_key(&server, "carol");
    admin_refused(&server, &["key", "create", "carol"], "LimitExceeded");
    admin_refused(&server, &["key", "create", "nobody"], "NoSuchEntity");
    admin_refused(&server, &["key", "create", "alicekey"], "DeleteConflict"); // config users change in the config

    // carol is an owner: she creates and owns a bucket; bob may not read it.
    let carol = server.client_with(&key1, &secret1);
    create_bucket(&carol, "carols").await;
    put(&carol, "carols", "k", b"carol's data").await;
    let bob = server.client_with("bobkey", "bobsecret12345");
    expect_s3_error(
        bob.get_object().bucket("carols").key("k").send().await,
        403,
        &["AccessDenied"],
        "bob reads carol's",
    );

    // The list shows kinds and keys, never a secret; nothing holds a secret in the clear.
    let list = users_listed(&server);
    let listed = listed_user(&list, "carol").expect("carol is listed");
    assert_eq!((listed["kind"].as_str(), listed["source"].as_str()), (Some("owner"), Some("run-time")), "{listed}");
    assert_eq!(listed["access_keys"].as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(listed_user(&list, "alicekey").unwrap()["source"], "config");
    let text = list.to_string();
    assert!(!text.contains(&secret1) && !text.contains(&secret2), "the user list shows a secret: {text}");
    for secret in [&secret1, &secret2] {
        let found = file_containing(server.data_dir(), secret.as_bytes());
        assert_eq!(found, None, "a secret is in the clear in the data dir");
        assert!(!server.stderr_text().contains(secret.as_str()), "a secret is in the server's log");
    }
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(server.data_dir().join("server.key")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "server.key's mode");

    // Only admins use the admin API.
    let (ok, _, stderr) = admin_as(&server, "bobkey", "bobsecret12345", &["user", "list"]);
    assert!(!ok && stderr.contains("AccessDenied"), "bob listed the users: {stderr}");
    let (ok, _, stderr) = admin_as(&server, &key1, &secret1, &["user", "create", "mallory"]);
    assert!(!ok && stderr.contains("AccessDenied"), "carol made a user: {stderr}");

    server.kill9();
    server.restart();
    assert_bytes_eq(&get(&server.client_with(&key1, &secret1), "carols", "k").await, b"carol's data", "after kill -9");
    assert!(key_works(&server, &key2, &secret2).await, "carol's second key after kill -9");

    // Disabling a key, then the user.
    admin_ok(&server, &["key", "disable", &key1]);
    assert!(!key_works(&server, &key1, &secret1).await, "a disabled key still works");
    assert!(key_works(&server, &key2, &secret2).await, "disabling one key stopped the other");
    server.kill9();
    server.restart();
    assert!(!key_works(&server, &key1, &secret1).await, "a disabled key works again after kill -9");
    admin_ok(&server, &["user", "disable", "carol"]);
    assert!(!key_works(&server, &key2, &secret2).await, "a disabled user's key still works");
    admin_ok(&server, &["user", "enable", "carol"]);
    admin_ok(&server, &["key", "enable", &key1]);
    assert!(key_works(&server, &key1, &secret1).await && key_works(&server, &key2, &secret2).await, "enabled again");

    // A user is deleted only without keys and buckets.
    admin_refused(&server, &["user", "delete", "carol"], "DeleteConflict");
    admin_ok(&server, &["key", "delete", &key2]);
    assert!(!key_works(&server, &key2, &secret2).await, "a deleted key still works");
    let carol = server.client_with(&key1, &secret1);
    carol.delete_object().bucket("carols").key("k").send().await.ok_or_panic("carol deletes k");
    admin_ok(&server, &["key", "delete", &key1]);
    admin_refused(&server, &["user", "delete", "carol"], "DeleteConflict"); // she still owns "carols"
    server.client().delete_bucket().bucket("carols").send().await.ok_or_panic("the admin deletes carols");
    admin_ok(&server, &["user", "delete", "carol"]);
    admin_refused(&server, &["key", "delete", &key1], "NoSuchEntity");

    server.kill9();
    server.restart();
    assert!(!key_works(&server, &key1, &secret1).await, "a deleted key came back after kill -9");
    assert_eq!(listed_user(&users_listed(&server), "carol"), None, "a deleted user came back after kill -9");
}

#[tokio::test]
async fn an_admin_made_at_run_time_manages_users_and_a_wrong_server_key_stops_the_start() {
    let mut server = Server::start();
    admin_ok(&server, &["user", "create", "ops", "--admin"]);
    let (key, secret) = new_key(&server, "ops");
    let (ok, stdout, stderr) = admin_as(&server, &key, &secret, &["user", "create", "dave"]);
    assert!(ok, "a run-time admin could not make a user: {stdout} {stderr}");
    create_bucket(&server.client_with(&key, &secret), "ops-bucket").await;

    // Another server key does not open the secrets: the server refuses to start.
    server.kill9();
    let key_file = server.data_dir().join("server.key");
    std::fs::remove_file(&key_file).unwrap();
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&key_file).unwrap();
        writeln!(file, "{}", "ab".repeat(32)).unwrap();
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(["serve", "--address", "127.0.0.1:0", "--data-dir"])
        .arg(server.data_dir())
        .env("QUARRY_ACCESS_KEY", ADMIN_ACCESS_KEY)
        .env("QUARRY_SECRET_KEY", ADMIN_SECRET_KEY)
        .env_remove("QUARRY_SERVER_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("server key does not open"),
        "expected the start to fail on the wrong server key, got {:?}: {stderr}",
        output.status
    );
}
