//! Checking a document as `guardc check` does, in two steps.
//!
//! `guardc check` runs the front end and, if it succeeds, lowering, whose lints (W0101,
//! W0102) and table limits (E0500) only the tables show. The front end takes milliseconds
//! even for a thousand rules; lowering builds the path DFA and can take most of a second
//! there. So the server answers every change with the front end's diagnostics at once, and
//! hands a checked policy to one background worker that lowers it; when the worker is done,
//! and the document has not changed since, the server publishes the whole set, the same as
//! `guardc check`'s. The worker only ever lowers the latest version of each document.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crossbeam_channel::{Receiver, Sender};
use lsp_types::Uri;

use crate::checked;
use crate::cli::{back_end_error, lower_warning};
use crate::codegen::CodegenError;
use crate::diag::{self, Diagnostic};
use crate::frontend::{self, Options};
use crate::lower;

/// What the front end made of a document: its diagnostics (errors and warnings), and the
/// checked policy to lower if there were no errors.
pub struct FrontEnd {
    pub diagnostics: Vec<Diagnostic>,
    pub policy: Option<checked::Policy>,
}

/// Runs the front end as `guardc check` does on a policy, or as an import does on a module
/// (which is never lowered).
pub fn front_end(name: &str, text: &str, module: bool, options: &Options) -> FrontEnd {
    if module {
        let diagnostics = match frontend::check_module(text, options) {
            Ok(warnings) | Err(warnings) => warnings,
        };
        return FrontEnd {
            diagnostics,
            policy: None,
        };
    }
    match frontend::check_source_with(name, text, options) {
        Ok(policy) => FrontEnd {
            diagnostics: policy.warnings.clone(),
            policy: Some(policy),
        },
        Err(diagnostics) => FrontEnd {
            diagnostics,
            policy: None,
        },
    }
}

/// Lowering's diagnostics for a checked policy, made exactly as `guardc check` makes them.
pub fn lower(policy: &checked::Policy) -> Vec<Diagnostic> {
    match lower::lower(policy) {
        Ok(lowered) => lowered.warnings.iter().map(lower_warning).collect(),
        Err(e) => vec![back_end_error(&CodegenError::Lower(e))],
    }
}

/// The whole set, in `guardc check`'s order.
pub fn combined(front: &[Diagnostic], lowered: &[Diagnostic]) -> Vec<Diagnostic> {
    let mut all: Vec<Diagnostic> = front.iter().chain(lowered).cloned().collect();
    diag::sort(&mut all);
    all
}

struct Job {
    uri: Uri,
    version: i32,
    policy: checked::Policy,
}

/// A finished lowering.
pub struct Lowered {
    pub uri: Uri,
    pub version: i32,
    /// `Err` with the panic's message if lowering panicked (a bug; the server reports it and
    /// goes on).
    pub diagnostics: Result<Vec<Diagnostic>, String>,
}

/// The background worker.
pub struct Worker {
    jobs: Sender<Job>,
    pub done: Receiver<Lowered>,
}

impl Worker {
    pub fn start() -> Worker {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let (finished, done) = crossbeam_channel::unbounded();
        // The main thread's stack size: lowering recurses over conditions (bounded by the
        // checker's limits), and must not run out where `guardc check` would not.
        let spawned = std::thread::Builder::new()
            .name("guardc-lsp-lower".into())
            .stack_size(8 << 20)
            .spawn(move || {
                while let Ok(first) = queue.recv() {
                    // Only the newest version of each document is worth lowering.
                    let mut latest: Vec<Job> = Vec::new();
                    // By the URI's text: `Uri` caches parts of itself inside, which clippy
                    // rightly dislikes in a key.
                    let mut at: HashMap<String, usize> = HashMap::new();
                    for job in std::iter::once(first).chain(queue.try_iter()) {
                        match at.get(job.uri.as_str()) {
                            Some(&i) => latest[i] = job,
                            None => {
                                at.insert(job.uri.as_str().to_string(), latest.len());
                                latest.push(job);
                            }
                        }
                    }
                    for job in latest {
                        let diagnostics = catch_unwind(AssertUnwindSafe(|| lower(&job.policy)))
                            .map_err(|p| {
                                p.downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_else(|| "unknown panic".to_string())
                            });
                        let result = Lowered {
                            uri: job.uri,
                            version: job.version,
                            diagnostics,
                        };
                        if finished.send(result).is_err() {
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            // Without a thread, lowering is never reported; the front end still is.
            eprintln!("guardc lsp: cannot start the lowering thread: {e}");
        }
        Worker { jobs, done }
    }

    /// Queues a checked policy for lowering.
    pub fn submit(&self, uri: Uri, version: i32, policy: checked::Policy) {
        let _ = self.jobs.send(Job {
            uri,
            version,
            policy,
        });
    }
}
