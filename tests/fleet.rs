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

/// `n` real `pixmirror serve` processes on `conf`: each with its image and
/// admin addresses (`host:port`); their logs are drained.
async fn start_fleet(
    conf: &std::path::Path,
    n: usize,
) -> Vec<(tokio::process::Child, String, String)> {
    let mut fleet = Vec::new();
    for _ in 0..n {
        let (child, base, admin, lines) = spawn_binary_with_admin(conf).await;
        tokio::spawn(drain(lines));
        let strip = |u: &str| u.trim_start_matches("http://").to_string();
        fleet.push((child, strip(&base), strip(&admin)));
    }
    fleet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_purge_drops_every_instances_copy() {
    let env = Env::new(Backend::Fs, "fleet").await;
    let conf = env.root().join("fleet.toml");
    env.write_config(
        &conf,
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"s3cret-token\"\n[derivatives]\nwrite = \"sync\"\n",
    );
    let fleet: Vec<_> = start_fleet(&conf, 3)
        .await
        .into_iter()
        .map(|(child, base, admin)| (child, format!("http://{base}"), admin))
        .collect();
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

/// `pixmirror_processed_total` of an instance, from its admin listener.
async fn processed(admin: &str) -> u64 {
    let text = get(&format!("http://{admin}/metrics")).await;
    let body = String::from_utf8_lossy(&text.body).to_string();
    body.lines()
        .find_map(|l| l.strip_prefix("pixmirror_processed_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// An nginx master that is stopped with SIGTERM, which also stops its
/// workers (SIGKILL would leave them running), whenever the test ends.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.0.wait();
    }
}

/// deploy/nginx/pixmirror.conf with these instances and this listen address.
fn nginx_conf(instances: &[String], listen: &str) -> String {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nginx/pixmirror.conf"
    ))
    .expect("deploy/nginx/pixmirror.conf");
    let (head, rest) = shipped
        .split_once("# BEGIN instances")
        .expect("BEGIN marker");
    let (_, tail) = rest.split_once("# END instances").expect("END marker");
    let servers: String = instances
        .iter()
        .map(|a| format!("    server {a} max_fails=1 fail_timeout=10s;\n"))
        .collect();
    let conf = format!("{head}\n{servers}{tail}");
    assert!(
        conf.contains("listen 80;"),
        "the shipped file listens on 80"
    );
    conf.replace("listen 80;", &format!("listen {listen};"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_consistent_hashing_renders_a_cold_url_once_in_the_fleet() {
    let env = Env::new(Backend::Fs, "hash").await;
    let conf = env.root().join("fleet.toml");
    env.write_config(
        &conf,
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n",
    );
    let mut fleet: Vec<_> = start_fleet(&conf, 3)
        .await
        .into_iter()
        .map(|(child, base, admin)| (Some(child), base, admin))
        .collect();
    // nginx with the shipped configuration, on a free loopback port.
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let instances: Vec<String> = fleet.iter().map(|f| f.1.clone()).collect();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("pixmirror.conf"),
        nginx_conf(&instances, &format!("127.0.0.1:{port}")),
    )
    .expect("conf");
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 512; }}\n\
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
             include {d}/pixmirror.conf; }}\n"
        ),
    )
    .expect("nginx.conf");
    let _nginx = Nginx(
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        std::process::Command::new(if std::path::Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        })
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx (make test installs it)"),
    );
    // Ready when it accepts connections.
    let front = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        ready,
        "nginx did not start: {:?}",
        std::fs::read_to_string(dir.path().join("error.log"))
    );

    let k = env.key("dragonfly.jpg");
    let url = format!("{front}/{k}?x-oss-process=image/resize,w_321/format,webp");
    let replies = common::burst(std::iter::repeat_n(url.clone(), 60)).await;
    assert!(
        replies.iter().all(|r| r.status == 200),
        "every request answered"
    );
    assert!(
        replies.iter().all(|r| r.body == replies[0].body),
        "one result"
    );
    let mut runs = Vec::new();
    for (_, _, admin) in &fleet {
        runs.push(processed(admin).await);
    }
    assert_eq!(
        runs.iter().sum::<u64>(),
        1,
        "libvips runs per instance: {runs:?}"
    );

    // Stop the instance that rendered: its URLs move to the others.
    let owner = runs.iter().position(|&n| n == 1).expect("an owner");
    if let Some(mut child) = fleet[owner].0.take() {
        let _ = child.kill().await;
        let _ = child.wait().await;
    }
    assert_eq!(
        get(&url).await.status,
        200,
        "the same URL, from another instance"
    );
    let others: Vec<String> = (0..20)
        .map(|i| format!("{front}/{k}?x-oss-process=image/resize,w_{}", 200 + i))
        .collect();
    for r in common::burst(others).await {
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    }
    for (child, _, _) in &mut fleet {
        if let Some(c) = child.as_mut() {
            let _ = c.kill().await;
        }
    }
}
