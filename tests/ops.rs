//! What an operator runs beside the server: the container's healthcheck command.
//! (The deploy/ and k8s/ artifacts are checked by tests/ops/check.sh.)

mod common;

use std::process::Command;

fn healthcheck(conf: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .args(["healthcheck", "--config"])
        .arg(conf)
        .output()
        .expect("run pixmirror healthcheck")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_follows_the_admin_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("serve.toml");
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).expect("mkdir");
    let storage = format!("[storage]\nkind = \"fs\"\nroot = \"{}\"\n", root.display());
    std::fs::write(
        &conf,
        format!("[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{storage}"),
    )
    .expect("write");
    let (mut child, _base, admin, lines) = common::spawn_binary_with_admin(&conf).await;
    tokio::spawn(common::drain(lines));
    // The healthcheck reads the admin address from its config, as in a container
    // where it listens on every address.
    let port = admin.rsplit(':').next().expect("port");
    let check = dir.path().join("check.toml");
    std::fs::write(
        &check,
        format!("[server]\nadmin_listen = \"0.0.0.0:{port}\"\n{storage}"),
    )
    .expect("write");
    let up = healthcheck(&check);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    child.kill().await.expect("kill");
    child.wait().await.expect("wait");
    let down = healthcheck(&check);
    assert_eq!(down.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&down.stderr);
    assert!(msg.contains("healthcheck 127.0.0.1:"), "{msg}");
}
