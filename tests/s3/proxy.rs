//! A TCP proxy on loopback in front of the S3 server: it counts the
//! requests that go through, and can drop, delay or cut connections, as a
//! flaky network does.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
pub struct Faults {
    /// Per mille of connections closed at once.
    pub drop: u64,
    /// Per mille of connections delayed by `delay` before anything goes.
    pub slow: u64,
    pub delay: Duration,
    /// Per mille of connections cut after some bytes of the answer.
    pub cut: u64,
}

pub struct Proxy {
    pub endpoint: String,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy to `upstream` (http://HOST:PORT).
    pub fn start(upstream: &str, faults: Faults) -> Proxy {
        let target = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let faults = Arc::new(faults);
        let (count, halt) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            for client in listener.incoming() {
                if halt.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                n += 1;
                let roll = splitmix(n) % 1000;
                let (target, faults, count) = (target.clone(), faults.clone(), count.clone());
                std::thread::spawn(move || serve(client, &target, &faults, roll, count));
            }
        });
        Proxy { endpoint, requests, stop }
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn serve(client: TcpStream, target: &str, f: &Faults, roll: u64, count: Arc<AtomicU64>) {
    if roll < f.drop {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if roll < f.drop + f.slow {
        std::thread::sleep(f.delay);
    }
    let cut = roll >= f.drop + f.slow && roll < f.drop + f.slow + f.cut;
    let Ok(upstream) = TcpStream::connect(target) else { return };
    let (mut c_in, mut u_out) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let up = std::thread::spawn(move || pump(&mut c_in, &mut u_out, None, Some(&count)));
    let (mut u_in, mut c_out) = (upstream, client);
    pump(&mut u_in, &mut c_out, cut.then_some(700), None);
    let _ = c_out.shutdown(Shutdown::Both);
    let _ = u_in.shutdown(Shutdown::Both);
    let _ = up.join();
}

/// Copies until EOF; with `limit`, cuts after that many bytes. With
/// `requests`, counts request lines (" HTTP/1.1\r\n").
fn pump(from: &mut TcpStream, to: &mut TcpStream, limit: Option<usize>, requests: Option<&AtomicU64>) {
    let mut buf = vec![0u8; 64 << 10];
    let mut sent = 0;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(c) = requests {
            tail.extend_from_slice(&buf[..n]);
            let marker = b" HTTP/1.1\r\n";
            let found = tail.windows(marker.len()).filter(|w| w == marker).count();
            c.fetch_add(found as u64, Ordering::SeqCst);
            let keep = tail.len().min(marker.len() - 1);
            tail.drain(..tail.len() - keep);
        }
        let n = match limit {
            Some(l) if sent + n >= l => l - sent,
            _ => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
        if limit.is_some_and(|l| sent >= l) {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
