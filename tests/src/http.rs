//! A local HTTP receiver standing in for falcosidekick: records every request and answers with
//! the status codes it was told to, in order (then 200), or never answers at all.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
}

pub struct Receiver {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    /// Answers the n-th request with `statuses[n]`, later ones with 200. `stall`: read requests
    /// but never answer (a receiver that hangs).
    pub fn start(statuses: Vec<u16>, stall: bool) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            for conn in listener.incoming().flatten() {
                let Some(req) = read_request(&conn) else {
                    continue;
                };
                if let Ok(mut v) = seen.lock() {
                    v.push(req);
                }
                if stall {
                    // Keep the connection open; the client times out.
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_secs(60));
                        drop(conn);
                    });
                    continue;
                }
                let status = statuses.get(n).copied().unwrap_or(200);
                n += 1;
                let mut conn = conn;
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Ok(Receiver { url, requests })
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits until `n` requests arrived (or the timeout passed).
    pub fn wait(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = std::time::Instant::now() + timeout;
        while self.requests().len() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.requests()
    }
}

fn read_request(conn: &TcpStream) -> Option<Request> {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut len = 0usize;
    let mut content_type = None;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let v = v.trim().to_string();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.parse().ok()?,
                "content-type" => content_type = Some(v),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
