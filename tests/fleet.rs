//! A fleet of three real `pixmirror serve` processes over one bucket:
//! `pixmirror purge --fleet` deletes the stored derivatives once and makes
//! every instance drop its in-memory copies, authenticated with
//! `server.admin_token`; a wrong token is refused and the command fails.

mod common;

use common::{drain, get, spawn_binary_with_admin, Backend, Env};

fn purge(conf: &std::path::Path, fleet: &str, key: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .arg("purge")
        .arg(key)
        .arg("--config")
        .arg(conf)
        .args(["--fleet", fleet])
        .output()
        .expect("run purge")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_purge_drops_every_instances_copy() {
    let env = Env::new(Backend::Fs, "fleet").await;
    let conf = env.root().join("fleet.toml");
    env.write_config(
        &conf,
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"s3cret-token\"\n[derivatives]\nwrite = \"sync\"\n",
    );
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let (child, base, admin, lines) = spawn_binary_with_admin(&conf).await;
        tokio::spawn(drain(lines));
        fleet.push((child, base, admin.trim_start_matches("http://").to_string()));
    }
    let key = env.key("sunset.jpg");
    let path = format!("/{key}?x-oss-process=image/resize,w_120");
    // Instance 0 renders (and stores); the others read the bucket into L1.
    let statuses: Vec<String> = {
        let mut v = Vec::new();
        for (_, base, _) in &fleet {
            v.push(get(&format!("{base}{path}")).await.cache().to_string());
        }
        v
    };
    assert_eq!(statuses, ["processed", "store", "store"]);
    for (_, base, _) in &fleet {
        assert_eq!(get(&format!("{base}{path}")).await.cache(), "memory");
    }
    let admins: Vec<&str> = fleet.iter().map(|(_, _, a)| a.as_str()).collect();
    let list = admins.join(",");

    // A wrong token: refused by every instance; the command fails.
    let bad = env.root().join("bad.toml");
    env.write_config(&bad, "[server]\nadmin_token = \"wrong\"\n");
    let out = purge(&bad, &list, &key);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("3 of 3 instance(s) did not drop") && err.contains("403"),
        "{err}"
    );
    assert!(err.contains("nothing was deleted"), "{err}");
    // ... and nothing was dropped from memory or deleted from the bucket.
    assert_eq!(
        get(&format!("{}{path}", fleet[1].1)).await.cache(),
        "memory"
    );
    assert!(env.exists(&format!("{key}__op__resize,w_120")).await);

    // The right token: deleted once, dropped everywhere.
    let out = purge(&conf, &list, &key);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("purged 1 derivative(s)"), "{stdout}");
    assert_eq!(stdout.matches("dropped").count(), 3, "{stdout}");
    for (i, (_, base, _)) in fleet.iter().enumerate() {
        let c = get(&format!("{base}{path}")).await.cache().to_string();
        assert_ne!(c, "memory", "instance {i} still served its old copy");
    }
    for (mut child, _, _) in fleet {
        let _ = child.kill().await;
    }
}
