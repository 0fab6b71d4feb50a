//! Where alerts go: stdout (text or JSON), a file (reopened on SIGHUP, for logrotate), and an
//! HTTP webhook (Falco JSON, as falcosidekick takes it). Every alert goes to every sink.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::alert::{self, Priority, RenderedAlert};
use crate::metrics::Metrics;
use crate::webhook::Webhook;

/// What the operator asked for on the command line.
#[derive(Clone, Debug, Default)]
pub struct SinkOptions {
    /// JSON lines instead of Falco's text lines, on stdout and in the file.
    pub json: bool,
    pub file: Option<PathBuf>,
    pub webhook: Option<String>,
    pub webhook_queue: usize,
}

pub struct Sinks {
    json: bool,
    file: Option<(PathBuf, File)>,
    webhook: Option<Webhook>,
    metrics: Arc<Metrics>,
    hostname: String,
}

fn open_append(path: &PathBuf) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the alert file `{}`", path.display()))
}

impl Sinks {
    pub fn new(opts: &SinkOptions, metrics: Arc<Metrics>) -> Result<Sinks> {
        let file = match &opts.file {
            Some(p) => Some((p.clone(), open_append(p)?)),
            None => None,
        };
        let webhook = match &opts.webhook {
            Some(url) => Some(Webhook::start(url, opts.webhook_queue, metrics.clone())?),
            None => None,
        };
        Ok(Sinks {
            json: opts.json,
            file,
            webhook,
            metrics,
            hostname: alert::hostname(),
        })
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// One alert to every sink.
    pub fn emit(&mut self, rendered: &RenderedAlert) {
        let line = if self.json {
            &rendered.json
        } else {
            &rendered.text
        };
        {
            let mut out = std::io::stdout().lock();
            // Line by line, for consumers that tail stdout.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        if let Some((_, f)) = &mut self.file
            && writeln!(f, "{line}").is_err()
        {
            self.metrics
                .file_write_failed
                .fetch_add(1, Ordering::Relaxed);
        }
        if let Some(w) = &self.webhook {
            w.send(&rendered.json);
        }
    }

    /// An agent message in Falco's internal-alert shape, to every sink.
    pub fn internal(
        &mut self,
        rule: &str,
        output: &str,
        fields: &BTreeMap<String, Value>,
        priority: Priority,
        epoch_ns: u64,
    ) {
        let rendered = RenderedAlert {
            text: alert::render_internal_text(output, fields, priority, epoch_ns),
            json: alert::render_internal_json(
                rule,
                output,
                fields,
                priority,
                epoch_ns,
                &self.hostname,
            ),
        };
        self.emit(&rendered);
    }

    /// SIGHUP: the file was rotated away; write to a new one at the same path.
    pub fn reopen(&mut self) {
        if let Some((path, f)) = &mut self.file {
            match open_append(path) {
                Ok(new) => *f = new,
                Err(e) => crate::report!("guard-run: warning: {e:#}; still writing the old file"),
            }
        }
    }

    /// Lets the webhook deliver what it has queued (bounded wait).
    pub fn close(self) {
        if let Some(w) = self.webhook {
            w.close(Duration::from_secs(10));
        }
    }
}
