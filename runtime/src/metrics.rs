//! The agent's counters, and a Prometheus text endpoint that exposes them.
//!
//! Every place an alert can be lost is counted by cause: the kernel's ring buffer full (the
//! kernel side counts it), the webhook's queue full, the webhook giving up after its retries.
//! An operator who scrapes these sees losses that logs alone would hide.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The kernel side's counters, as last read (they are per-CPU sums the agent polls).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub refused: u64,
    pub ring_full: u64,
    pub kill_failed: u64,
    pub paths_truncated: u64,
    /// Audit mode and the safety valve: refusals judged but not carried out.
    pub would_kill: u64,
    pub would_deny: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// Alerts the agent rendered, by rule name and action (`killed`, `denied`, ...).
    alerts: Mutex<BTreeMap<(String, String), u64>>,
    kernel: Mutex<KernelCounters>,
    pub webhook_sent: AtomicU64,
    /// Alerts dropped because the webhook's queue was full.
    pub webhook_queue_full: AtomicU64,
    /// Alerts the webhook gave up on after its retries.
    pub webhook_failed: AtomicU64,
    /// Lines a file sink could not write.
    pub file_write_failed: AtomicU64,
}

impl Metrics {
    pub fn count_alert(&self, rule: &str, action: &str) {
        if let Ok(mut m) = self.alerts.lock() {
            *m.entry((rule.to_string(), action.to_string())).or_default() += 1;
        }
    }

    pub fn set_kernel(&self, k: KernelCounters) {
        if let Ok(mut m) = self.kernel.lock() {
            *m = k;
        }
    }

    pub fn kernel(&self) -> KernelCounters {
        self.kernel.lock().map(|k| *k).unwrap_or_default()
    }

    /// Alerts lost so far, by cause, as the drop report and the metrics name them.
    pub fn drops(&self) -> [(&'static str, u64); 4] {
        [
            ("ring_buffer_full", self.kernel().ring_full),
            (
                "webhook_queue_full",
                self.webhook_queue_full.load(Ordering::Relaxed),
            ),
            (
                "webhook_failed",
                self.webhook_failed.load(Ordering::Relaxed),
            ),
            (
                "file_write_failed",
                self.file_write_failed.load(Ordering::Relaxed),
            ),
        ]
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let k = self.kernel();
        let mut counter = |name: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        counter(
            "guard_kernel_refusals_total",
            "Decisions other than allow.",
            &[(String::new(), k.refused)],
        );
        counter(
            "guard_kill_failed_total",
            "Kills the kernel could not deliver.",
            &[(String::new(), k.kill_failed)],
        );
        counter(
            "guard_paths_truncated_total",
            "Paths too long to read whole, judged fail closed.",
            &[(String::new(), k.paths_truncated)],
        );
        counter(
            "guard_kernel_not_enforced_total",
            "Refusals judged but not carried out (audit mode, safety valve), by what would have happened.",
            &[
                ("{would=\"kill\"}".to_string(), k.would_kill),
                ("{would=\"deny\"}".to_string(), k.would_deny),
            ],
        );
        let drops: Vec<(String, u64)> = self
            .drops()
            .iter()
            .map(|(cause, v)| (format!("{{cause=\"{cause}\"}}"), *v))
            .collect();
        counter(
            "guard_alerts_dropped_total",
            "Alerts lost, by cause.",
            &drops,
        );
        counter(
            "guard_webhook_sent_total",
            "Alerts the webhook delivered.",
            &[(String::new(), self.webhook_sent.load(Ordering::Relaxed))],
        );
        let alerts: Vec<(String, u64)> = self
            .alerts
            .lock()
            .map(|m| {
                m.iter()
                    .map(|((rule, action), v)| {
                        (
                            format!(
                                "{{rule=\"{}\",action=\"{}\"}}",
                                escape_label(rule),
                                escape_label(action)
                            ),
                            *v,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        counter(
            "guard_alerts_total",
            "Alerts raised, by rule and action.",
            &alerts,
        );
        out
    }
}

/// A label value as the exposition format wants it: `\`, `"` and newlines escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until the task is dropped. One request per connection;
/// anything else gets 404. A scraper is trusted no further than reading counters, so the
/// request is read only up to its head (8 KiB at most).
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut head = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let first = head.split(|&b| b == b'\r').next().unwrap_or_default();
            let response = if first.starts_with(b"GET /metrics ") || first == b"GET /metrics" {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = conn.write_all(response.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

/// Binds the metrics listener (before the policy is enforced, so a busy port fails the load).
pub async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::default();
        m.count_alert("guard /mnt/secrets/*", "killed");
        m.count_alert("guard /mnt/secrets/*", "killed");
        m.count_alert("say \"hi\"", "alerted");
        m.webhook_queue_full.fetch_add(3, Ordering::Relaxed);
        m.set_kernel(KernelCounters {
            refused: 2,
            ring_full: 1,
            would_kill: 4,
            ..Default::default()
        });
        let text = m.render();
        for line in [
            "# TYPE guard_alerts_total counter",
            "guard_alerts_total{rule=\"guard /mnt/secrets/*\",action=\"killed\"} 2",
            "guard_alerts_total{rule=\"say \\\"hi\\\"\",action=\"alerted\"} 1",
            "guard_alerts_dropped_total{cause=\"ring_buffer_full\"} 1",
            "guard_alerts_dropped_total{cause=\"webhook_queue_full\"} 3",
            "guard_kernel_refusals_total 2",
            "guard_kernel_not_enforced_total{would=\"kill\"} 4",
            "guard_kernel_not_enforced_total{would=\"deny\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
    }
}
