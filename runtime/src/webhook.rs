//! The HTTP webhook sink: POSTs each alert's Falco JSON, as Falco's `http_output` does, to
//! falcosidekick or anything that accepts it.
//!
//! A slow or unreachable receiver must never hold up enforcement or the event loop: alerts go
//! through a bounded queue to one worker thread. When the queue is full the alert is dropped
//! and counted (`webhook_queue_full`); the agent's drop report says so. Failed posts are retried
//! with backoff; a receiver that refuses an alert outright (HTTP 4xx other than 408/429) is not
//! asked again, and every alert given up on is counted (`webhook_failed`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::metrics::Metrics;

/// Attempts per alert, and the wait before the first retry (doubled each time).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// One request may take this long, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Webhook {
    tx: Option<SyncSender<String>>,
    worker: Option<JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Webhook {
    /// Starts the worker for `url` with room for `capacity` queued alerts.
    pub fn start(url: &str, capacity: usize, metrics: Arc<Metrics>) -> Result<Webhook> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--webhook `{url}`: the URL must start with http:// or https://");
        }
        if capacity == 0 {
            bail!("--webhook-queue must be at least 1");
        }
        let (tx, rx) = sync_channel::<String>(capacity);
        let url = url.to_string();
        let m = metrics.clone();
        let worker = std::thread::Builder::new()
            .name("guard-webhook".into())
            .spawn(move || deliver(&url, &rx, &m))?;
        Ok(Webhook {
            tx: Some(tx),
            worker: Some(worker),
            metrics,
        })
    }

    /// Queues one alert (its JSON line); never blocks.
    pub fn send(&self, json: &str) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(json.to_string()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics
                    .webhook_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Stops taking alerts and gives the worker until `deadline` to deliver the queue.
    pub fn close(mut self, within: Duration) {
        self.tx = None;
        let Some(worker) = self.worker.take() else {
            return;
        };
        let deadline = Instant::now() + within;
        while !worker.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if worker.is_finished() {
            let _ = worker.join();
        } else {
            crate::report!(
                "guard-run: warning: the webhook did not take every queued alert in time"
            );
        }
    }
}

fn deliver(url: &str, rx: &Receiver<String>, metrics: &Metrics) {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut warned = false;
    for body in rx {
        match post(&agent, url, &body) {
            Ok(()) => {
                metrics.webhook_sent.fetch_add(1, Ordering::Relaxed);
                warned = false;
            }
            Err(why) => {
                metrics.webhook_failed.fetch_add(1, Ordering::Relaxed);
                // Once per outage, not once per alert.
                if !warned {
                    crate::report!("guard-run: warning: the webhook lost an alert: {why}");
                    warned = true;
                }
            }
        }
    }
}

/// One alert, with retries; `Err` says why it was given up.
fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<(), String> {
    let mut backoff = FIRST_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let sent = agent
            .post(url)
            .header("Content-Type", "application/json")
            .header(
                "User-Agent",
                concat!("guard-run/", env!("CARGO_PKG_VERSION")),
            )
            .send(body);
        match sent {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let status = resp.status().as_u16();
                last = format!("{url} answered HTTP {status}");
                let retriable = status >= 500 || status == 408 || status == 429;
                if !retriable {
                    return Err(last);
                }
            }
            Err(e) => last = format!("{url}: {e}"),
        }
        if attempt < ATTEMPTS {
            std::thread::sleep(backoff);
            backoff *= 2;
        }
    }
    Err(format!("{last} ({ATTEMPTS} attempts)"))
}
