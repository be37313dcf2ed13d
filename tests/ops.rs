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

/// A style is a process string: the language checks it, not the configuration
/// (config depends on nothing of pixmirror), before a server starts and in
/// `check-config`, for the top level and for every site. The error names it.
#[tokio::test]
async fn bad_styles_are_refused_before_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("bucket");
    std::fs::create_dir_all(&root).expect("mkdir");
    let storage = format!("[storage]\nkind = \"fs\"\nroot = \"{}\"\n", root.display());
    let site = "[[sites]]\nhosts = [\"b.test\"]\n[sites.styles]\nsmall = \"image/resize,w_0\"\n";
    for (conf, named) in [
        (
            format!("{storage}[styles]\nthumb = \"image/nope,w_1\"\n"),
            "styles.thumb",
        ),
        (format!("{storage}{site}"), "sites[0]: styles.small"),
    ] {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, &conf).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_pixmirror"))
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .expect("run check-config");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(named), "{named}: {err}");
        let cfg = pixmirror::config::Config::load(&path, true).expect("the file itself is valid");
        let e = pixmirror::http::Server::bind(cfg)
            .await
            .err()
            .expect("refused");
        assert!(e.to_string().contains(named), "{named}: {e}");
    }
    let ok = dir.path().join("ok.toml");
    std::fs::write(
        &ok,
        format!("{storage}[styles]\nthumb = \"image/resize,w_10\"\n"),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .args(["check-config", "--config"])
        .arg(&ok)
        .output()
        .expect("run check-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
