//! The `pixmirror` command: thin; all logic lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pixmirror::config::{config_path, Config};

#[derive(Parser)]
#[command(
    name = "pixmirror",
    version,
    about = "Caching image proxy with OSS-style processing and mirror back-to-origin"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve images (and the admin listener).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the processing pipeline offline: pixmirror process --ops 'image/resize,w_300' IN OUT
    /// (a watermark image's key is read as a file path)
    Process {
        #[arg(long)]
        ops: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// The `Accept` header `format,auto` is resolved against (none: the
        /// source's format).
        #[arg(long)]
        accept: Option<String>,
        input: PathBuf,
        output: PathBuf,
    },
    /// Render into the bucket the derivatives that access logs (CloudFront,
    /// nginx/Apache combined) or URL lists ask for, most requested first.
    Warm {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Renders at once (default: process.workers).
        #[arg(long)]
        concurrency: Option<usize>,
        /// The `[[sites]]` entry to warm (default: the top-level site).
        #[arg(long)]
        site: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Turn an OSS bucket's website XML (RoutingRules) and style list XML
    /// into pixmirror TOML on stdout; what does not carry over is listed on stderr.
    ImportOss {
        #[arg(long)]
        website: Option<PathBuf>,
        #[arg(long)]
        styles: Option<PathBuf>,
    },
    /// Load and validate the configuration; name the bad key and why.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print URL signed with the first of `signing.keys` (SPEC: x-pm-signature).
    Sign {
        url: String,
        /// Valid for this long (e.g. `1h`, `7d`); no expiry without it.
        #[arg(long)]
        expires: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Exit 0 when the admin listener answers `/healthz` with 200 (for a
    /// container's HEALTHCHECK: no curl in the image).
    Healthcheck {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Delete the stored derivatives of a key.
    Purge {
        key: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also drop the key from the memory of every instance behind this DNS
        /// name (or comma-separated host[:port] list), through their admin
        /// listeners with server.admin_token.
        #[arg(long)]
        fleet: Option<String>,
    },
}

fn load(flag: Option<PathBuf>) -> Result<Config, String> {
    let path = config_path(flag.as_deref());
    Config::load(&path, flag.is_some())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PIXMIRROR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::CheckConfig { config } => load(config)
            .and_then(|c| pixmirror::service::sites::check_styles(&c).map(|()| c))
            .map(|c| {
                println!(
                    "config ok: storage {:?}, listen {}, admin {}, {} style(s), {} mirror rule(s)",
                    c.storage.kind,
                    c.server.listen,
                    c.server.admin_listen,
                    c.styles.len(),
                    c.mirror.rules.len()
                );
            }),
        Cmd::Process {
            ops,
            config,
            accept,
            input,
            output,
        } => process(ops, config, accept, input, output),
        Cmd::Serve { config } => runtime().and_then(|rt| rt.block_on(serve(config))),
        Cmd::Sign {
            url,
            expires,
            config,
        } => sign(&url, expires.as_deref(), config).map(|u| println!("{u}")),
        Cmd::Purge { key, config, fleet } => {
            runtime().and_then(|rt| rt.block_on(purge(key, config, fleet)))
        }
        Cmd::ImportOss { website, styles } => import_oss(website, styles),
        Cmd::Warm {
            config,
            concurrency,
            site,
            files,
        } => runtime().and_then(|rt| rt.block_on(warm(config, concurrency, site, files))),
        Cmd::Healthcheck { config } => {
            load(config).and_then(|c| healthcheck(c.server.admin_listen))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pixmirror: {e}");
            ExitCode::FAILURE
        }
    }
}

/// GET /healthz on the admin listener (loopback when it listens on every
/// address), with a 2 s limit on each step.
fn healthcheck(admin: std::net::SocketAddr) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut addr = admin;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let limit = Some(std::time::Duration::from_secs(2));
    let fail = |e: std::io::Error| format!("healthcheck {addr}: {e}");
    let mut conn = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
        .map_err(fail)?;
    conn.set_read_timeout(limit).map_err(fail)?;
    conn.set_write_timeout(limit).map_err(fail)?;
    conn.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(fail)?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).map_err(fail)?;
    match &head[9..12] {
        b"200" => Ok(()),
        code => Err(format!(
            "healthcheck {addr}: /healthz answered {}",
            String::from_utf8_lossy(code)
        )),
    }
}

/// `url` (absolute, or a path) with `x-pm-expires` and `x-pm-signature` added.
fn sign(url: &str, expires: Option<&str>, config: Option<PathBuf>) -> Result<String, String> {
    use pixmirror::signing;
    let cfg = load(config)?;
    let key = cfg
        .signing
        .keys
        .first()
        .ok_or("signing.keys is empty: nothing to sign with")?;
    let path_start = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or(url.len(), |j| i + 3 + j),
        None => 0,
    };
    let (base, path_query) = url.split_at(path_start);
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    let mut params: Vec<String> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| !signing::is_signature_param(p.split('=').next().unwrap_or("")))
        .map(str::to_string)
        .collect();
    let rest = params.join("&");
    let process = signing::process_of(&rest).map_err(|e| e.to_string())?;
    let expiry = match expires {
        Some(d) => {
            let d = humantime::parse_duration(d).map_err(|e| format!("--expires: {e}"))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?;
            Some((now + d).as_secs().to_string())
        }
        None => None,
    };
    let msg = signing::message(path, process, expiry.as_deref());
    let sig = signing::sign(key, &msg).map_err(|e| e.to_string())?;
    if let Some(e) = &expiry {
        params.push(format!("{}={e}", signing::EXPIRES));
    }
    params.push(format!("{}={sig}", signing::SIGNATURE));
    Ok(format!("{base}{path}?{}", params.join("&")))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn process(
    ops: String,
    config: Option<PathBuf>,
    accept: Option<String>,
    input: PathBuf,
    output: PathBuf,
) -> Result<(), String> {
    let cfg = match &config {
        Some(_) => load(config)?,
        None => Config::default(),
    };
    let out = runtime()?.block_on(pixmirror::http::offline::process_file(
        cfg,
        &input,
        &ops,
        accept.as_deref(),
    ))?;
    std::fs::write(&output, &out.bytes).map_err(|e| format!("{}: {e}", output.display()))?;
    eprintln!(
        "{} -> {} ({}, {} bytes, {})",
        input.display(),
        output.display(),
        out.content_type,
        out.bytes.len(),
        out.process.as_deref().unwrap_or("as stored")
    );
    Ok(())
}

async fn serve(config: Option<PathBuf>) -> Result<(), String> {
    let cfg = load(config)?;
    let server = pixmirror::http::Server::bind(cfg).await?;
    tracing::info!(
        listen = %server.addr,
        admin = %server.admin_addr,
        libvips = %pixmirror::process::engine::vips::version(),
        "pixmirror serving"
    );
    server.run(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("signal received");
}

fn import_oss(website: Option<PathBuf>, styles: Option<PathBuf>) -> Result<(), String> {
    if website.is_none() && styles.is_none() {
        return Err("import-oss: give --website FILE and/or --styles FILE".into());
    }
    let read = |p: &Option<PathBuf>| -> Result<Option<String>, String> {
        p.as_ref()
            .map(|p| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display())))
            .transpose()
    };
    let (w, s) = (read(&website)?, read(&styles)?);
    let imp = pixmirror::oss_import::import(w.as_deref(), s.as_deref())?;
    println!("# Written by `pixmirror import-oss`: paste into config.toml (see README, Migrating from OSS).");
    print!("{}", imp.toml);
    if !imp.toml.ends_with('\n') {
        println!();
    }
    for line in &imp.report {
        eprintln!("import-oss: {line}");
    }
    eprintln!(
        "import-oss: {} mirror rule(s) and {} style(s) imported; {} note(s) above",
        imp.rules,
        imp.styles,
        imp.report.len()
    );
    Ok(())
}

async fn warm(
    config: Option<PathBuf>,
    concurrency: Option<usize>,
    site: Option<String>,
    files: Vec<PathBuf>,
) -> Result<(), String> {
    let cfg = pixmirror::warm::warm_config(load(config)?);
    pixmirror::process::engine::vips::init().map_err(|e| e.to_string())?;
    let store = pixmirror::storage::open::from_config(&cfg.storage).await?;
    let concurrency = concurrency.unwrap_or_else(|| cfg.workers());
    let sites = pixmirror::service::sites::Sites::build(cfg, store).await?;
    let app = sites
        .named(site.as_deref())
        .cloned()
        .ok_or_else(|| format!("--site {}: no such site", site.unwrap_or_default()))?;
    let summary = pixmirror::warm::run(app, &files, concurrency).await?;
    println!("{summary}");
    Ok(())
}

async fn purge(key: String, config: Option<PathBuf>, fleet: Option<String>) -> Result<(), String> {
    let cfg = load(config)?;
    pixmirror::service::purge::command(&cfg, &key, fleet.as_deref(), &mut |line| println!("{line}"))
        .await
}
