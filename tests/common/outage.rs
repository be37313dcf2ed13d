//! A TCP pass-through on loopback in front of the real Garage, which a test can
//! cut: `Down` refuses (every connection is closed at once, live ones too),
//! `Hang` accepts and never answers. Garage itself keeps running for the other
//! tests; only this path to it fails.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    Down,
    Hang,
}

pub struct Outage {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl Outage {
    pub async fn start(target: SocketAddr) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mode, rx) = watch::channel(Mode::Up);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let now = *rx.borrow_and_update();
                    match now {
                        Mode::Down => drop(client),
                        Mode::Hang => {
                            // Hold the connection, say nothing, until the mode changes.
                            let _ = rx.changed().await;
                            drop(client);
                        }
                        Mode::Up => {
                            let Ok(mut server) = TcpStream::connect(target).await else {
                                return;
                            };
                            let mut client = client;
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                // Any change of mode cuts live connections too.
                                _ = rx.changed() => {}
                            }
                        }
                    }
                });
            }
        });
        Outage { addr, mode }
    }

    pub fn set(&self, m: Mode) {
        let _ = self.mode.send(m);
    }

    /// The endpoint URL to give pixmirror instead of Garage's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}
