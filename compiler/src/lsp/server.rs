//! The server loop: the initialize handshake, then requests and notifications from the
//! client, and finished lowerings from the worker, one at a time on this thread.
//!
//! Every handler runs under `catch_unwind`: the front end is written not to panic (the fuzzer
//! holds it to that), but a bug in it must cost the editor one answer, not its server.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use crossbeam_channel::Receiver;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, LogMessage,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{Completion, Formatting, GotoDefinition, HoverRequest, Request as _};
use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionOptions, CompletionParams, CompletionTextEdit,
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    DocumentFormattingParams, Documentation, GotoDefinitionParams, Hover, HoverContents,
    HoverParams, HoverProviderCapability, InitializeParams, InsertTextFormat, Location,
    LogMessageParams, MarkupContent, MarkupKind, MessageType, OneOf, PositionEncodingKind,
    PublishDiagnosticsParams, ServerCapabilities, TextDocumentPositionParams,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextEdit, Uri,
};
use serde_json::Value;

use super::analysis::{self, Lowered, Worker};
use super::completion::{self, Kind};
use super::definition;
use super::diagnostics::{self, Target};
use super::documents::{Document, Encoding};
use super::hover;
use super::stdlib::Library;
use super::uri;
use crate::fmt::format_source;
use crate::frontend::Options;
use crate::span::Span;

/// Runs the server on stdin and stdout until the client says `exit`; the exit status.
pub fn run(options: Options) -> i32 {
    let (connection, io_threads) = Connection::stdio();
    match serve(&connection, options) {
        Ok(()) => {
            // Closing our end lets the writer thread finish; the reader already has, after
            // `exit`.
            drop(connection);
            match io_threads.join() {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("guardc lsp: {e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("guardc lsp: {e}");
            1
        }
    }
}

/// Serves one client over `connection`: `Ok` after a clean `shutdown` and `exit`.
pub fn serve(connection: &Connection, options: Options) -> Result<(), String> {
    let (id, params) = connection.initialize_start().map_err(|e| e.to_string())?;
    let params: InitializeParams =
        serde_json::from_value(params).map_err(|e| format!("bad initialize request: {e}"))?;
    let mut server = Server::new(connection, options, &params);
    let capabilities = server.capabilities();
    let result = serde_json::json!({
        "capabilities": capabilities,
        "serverInfo": { "name": "guardc", "version": env!("CARGO_PKG_VERSION") },
    });
    connection
        .initialize_finish(id, result)
        .map_err(|e| e.to_string())?;
    server.run()
}

struct Server<'c> {
    connection: &'c Connection,
    documents: HashMap<Uri, Document>,
    library: Library,
    encoding: Encoding,
    /// Whether the client takes completion snippets (tab stops in a function's arguments).
    snippets: bool,
    /// The workspace root, for file names in messages.
    root: Option<PathBuf>,
    worker: Worker,
}

/// A request's failure: the JSON-RPC error code and message.
type Failure = (i32, String);

impl<'c> Server<'c> {
    fn new(connection: &'c Connection, options: Options, params: &InitializeParams) -> Server<'c> {
        let offered = params
            .capabilities
            .general
            .as_ref()
            .and_then(|g| g.position_encodings.as_deref())
            .unwrap_or_default();
        // UTF-8 when the client can: it is what the compiler counts, so nothing is converted.
        let encoding = if offered.contains(&PositionEncodingKind::UTF8) {
            Encoding::Utf8
        } else {
            Encoding::Utf16
        };
        let snippets = params
            .capabilities
            .text_document
            .as_ref()
            .and_then(|t| t.completion.as_ref())
            .and_then(|c| c.completion_item.as_ref())
            .and_then(|i| i.snippet_support)
            .unwrap_or(false);
        #[allow(deprecated)] // `root_uri` is what older clients send instead of folders.
        let root = params
            .workspace_folders
            .as_ref()
            .and_then(|f| f.first())
            .map(|f| &f.uri)
            .or(params.root_uri.as_ref())
            .and_then(uri::to_path);
        Server {
            connection,
            documents: HashMap::new(),
            library: Library::new(options),
            encoding,
            snippets,
            root,
            worker: Worker::start(),
        }
    }

    fn capabilities(&self) -> ServerCapabilities {
        ServerCapabilities {
            position_encoding: Some(match self.encoding {
                Encoding::Utf8 => PositionEncodingKind::UTF8,
                Encoding::Utf16 => PositionEncodingKind::UTF16,
            }),
            text_document_sync: Some(TextDocumentSyncCapability::Kind(
                TextDocumentSyncKind::INCREMENTAL,
            )),
            hover_provider: Some(HoverProviderCapability::Simple(true)),
            definition_provider: Some(OneOf::Left(true)),
            completion_provider: Some(CompletionOptions {
                // `%` for fields, `"` for modules, `(` for arguments, `.` inside field names.
                trigger_characters: Some(["%", "\"", "(", "."].map(String::from).to_vec()),
                ..CompletionOptions::default()
            }),
            document_formatting_provider: Some(OneOf::Left(true)),
            ..ServerCapabilities::default()
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let mut done: Receiver<Lowered> = self.worker.done.clone();
        loop {
            crossbeam_channel::select! {
                recv(self.connection.receiver) -> message => match message {
                    Err(_) => return Err("the client closed the connection without `exit`".into()),
                    Ok(Message::Request(request)) => {
                        if self
                            .connection
                            .handle_shutdown(&request)
                            .map_err(|e| e.to_string())?
                        {
                            return Ok(());
                        }
                        self.request(request);
                    }
                    Ok(Message::Notification(n)) if n.method == "exit" => {
                        return Err("`exit` without `shutdown`".into());
                    }
                    Ok(Message::Notification(n)) => self.notification(n),
                    // The server sends no requests, so expects no responses.
                    Ok(Message::Response(_)) => {}
                },
                recv(done) -> lowered => match lowered {
                    Ok(lowered) => self.lowered(lowered),
                    // The worker is gone (it could not start): the front end still reports.
                    Err(_) => done = crossbeam_channel::never(),
                },
            }
        }
    }

    fn send(&self, message: impl Into<Message>) {
        // Fails only once the client is gone, which the loop notices on its own.
        let _ = self.connection.sender.send(message.into());
    }

    fn log(&self, kind: MessageType, message: String) {
        let params = LogMessageParams { typ: kind, message };
        self.send(Notification::new(LogMessage::METHOD.into(), params));
    }

    fn request(&mut self, request: Request) {
        let id = request.id.clone();
        let method = request.method.clone();
        let response = match catch_unwind(AssertUnwindSafe(|| self.answer(request))) {
            Ok(Ok(value)) => Response::new_ok(id, value),
            Ok(Err((code, message))) => Response::new_err(id, code, message),
            Err(panic) => Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                format!(
                    "guardc lsp: internal error in `{method}`: {}",
                    panic_text(&panic)
                ),
            ),
        };
        self.send(response);
    }

    fn answer(&mut self, request: Request) -> Result<Value, Failure> {
        let params = request.params;
        let json = |v: Result<Value, serde_json::Error>| {
            v.map_err(|e| (ErrorCode::InternalError as i32, e.to_string()))
        };
        match request.method.as_str() {
            HoverRequest::METHOD => {
                let p: HoverParams = parse(params)?;
                json(serde_json::to_value(
                    self.hover(&p.text_document_position_params),
                ))
            }
            GotoDefinition::METHOD => {
                let p: GotoDefinitionParams = parse(params)?;
                json(serde_json::to_value(
                    self.definition(&p.text_document_position_params),
                ))
            }
            Completion::METHOD => {
                let p: CompletionParams = parse(params)?;
                json(serde_json::to_value(
                    self.completion(&p.text_document_position),
                ))
            }
            Formatting::METHOD => {
                let p: DocumentFormattingParams = parse(params)?;
                json(serde_json::to_value(self.format(&p.text_document.uri)))
            }
            method => Err((
                ErrorCode::MethodNotFound as i32,
                format!("guardc lsp does not implement `{method}`"),
            )),
        }
    }

    fn notification(&mut self, notification: Notification) {
        let method = notification.method.clone();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.notified(notification))) {
            self.log(
                MessageType::ERROR,
                format!(
                    "guardc lsp: internal error in `{method}`: {}",
                    panic_text(&panic)
                ),
            );
        }
    }

    fn notified(&mut self, notification: Notification) {
        let params = notification.params;
        match notification.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let Ok(p) = parse::<DidOpenTextDocumentParams>(params) else {
                    return;
                };
                let doc = p.text_document;
                let document = Document::new(doc.text, doc.version, self.encoding);
                self.documents.insert(doc.uri.clone(), document);
                self.analyse(&doc.uri);
            }
            DidChangeTextDocument::METHOD => {
                let Ok(p) = parse::<DidChangeTextDocumentParams>(params) else {
                    return;
                };
                let uri = p.text_document.uri;
                let Some(document) = self.documents.get_mut(&uri) else {
                    return;
                };
                document.apply(p.text_document.version, p.content_changes);
                self.analyse(&uri);
            }
            DidCloseTextDocument::METHOD => {
                let Ok(p) = parse::<DidCloseTextDocumentParams>(params) else {
                    return;
                };
                self.documents.remove(&p.text_document.uri);
                // A closed file's problems leave the problems list with it.
                self.send(Notification::new(
                    PublishDiagnostics::METHOD.into(),
                    PublishDiagnosticsParams::new(p.text_document.uri, Vec::new(), None),
                ));
            }
            // `initialized`, saves, cancellations, configuration: nothing to do.
            _ => {}
        }
    }

    /// Checks a document after it opened or changed: the front end now, lowering queued.
    fn analyse(&mut self, uri: &Uri) {
        let path = uri::to_path(uri);
        let name = uri::display_name(uri, self.root.as_deref());
        let module = path.as_deref().is_some_and(|p| self.library.is_module(p));
        let Some(document) = self.documents.get_mut(uri) else {
            return;
        };
        let options = &self.library.options;
        let front = catch_unwind(AssertUnwindSafe(|| {
            analysis::front_end(&name, &document.text, module, options)
        }));
        match front {
            Ok(front) => {
                document.front = front.diagnostics;
                match front.policy {
                    Some(policy) => self.worker.submit(uri.clone(), document.version, policy),
                    // `guardc check` does not lower a policy with errors: nothing of
                    // lowering's applies any more.
                    None => document.lowered.clear(),
                }
            }
            Err(panic) => {
                document.front.clear();
                document.lowered.clear();
                let message = format!(
                    "guardc lsp: internal error checking `{name}`: {}",
                    panic_text(&panic)
                );
                self.log(MessageType::ERROR, message);
            }
        }
        self.publish(uri);
    }

    fn lowered(&mut self, lowered: Lowered) {
        let Some(document) = self.documents.get_mut(&lowered.uri) else {
            return;
        };
        // A newer version is on its way to the worker, or failed the front end.
        if document.version != lowered.version {
            return;
        }
        match lowered.diagnostics {
            Ok(diagnostics) => {
                document.lowered = diagnostics;
                self.publish(&lowered.uri);
            }
            Err(panic) => self.log(
                MessageType::ERROR,
                format!("guardc lsp: internal error lowering the policy: {panic}"),
            ),
        }
    }

    fn publish(&self, uri: &Uri) {
        let Some(document) = self.documents.get(uri) else {
            return;
        };
        let all = analysis::combined(&document.front, &document.lowered);
        let target = Target {
            uri,
            text: &document.text,
            lines: &document.lines,
            encoding: self.encoding,
        };
        let converted = diagnostics::convert(&all, &target, &self.library);
        let params = PublishDiagnosticsParams::new(uri.clone(), converted, Some(document.version));
        self.send(Notification::new(PublishDiagnostics::METHOD.into(), params));
    }

    /// The open document and the byte offset of a position in it.
    fn at(&self, position: &TextDocumentPositionParams) -> Option<(&Document, usize)> {
        let document = self.documents.get(&position.text_document.uri)?;
        let offset = document.lines.offset(&document.text, position.position);
        Some((document, offset))
    }

    fn hover(&self, position: &TextDocumentPositionParams) -> Option<Hover> {
        let (document, offset) = self.at(position)?;
        let (markdown, span) = hover::hover(&document.text, offset, &self.library)?;
        Some(Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: markdown,
            }),
            range: Some(document.lines.range(&document.text, span)),
        })
    }

    fn definition(&self, position: &TextDocumentPositionParams) -> Option<Location> {
        let (document, offset) = self.at(position)?;
        let place = definition::definition(&document.text, offset, &self.library)?;
        match place.path {
            None => Some(Location::new(
                position.text_document.uri.clone(),
                document.lines.range(&document.text, place.span),
            )),
            Some(path) => {
                let lines = super::documents::Lines::new(&place.text, self.encoding);
                Some(Location::new(
                    uri::from_path(&path)?,
                    lines.range(&place.text, place.span),
                ))
            }
        }
    }

    fn completion(&self, position: &TextDocumentPositionParams) -> Option<Vec<CompletionItem>> {
        let (document, offset) = self.at(position)?;
        let candidates = completion::complete(&document.text, offset, &self.library);
        let range = |span: Span| document.lines.range(&document.text, span);
        let items = candidates.into_iter().map(|c| {
            let snippet = c.snippet && self.snippets;
            let new_text = if c.snippet && !self.snippets {
                c.label.clone()
            } else {
                c.insert
            };
            CompletionItem {
                kind: Some(match c.kind {
                    Kind::Keyword => CompletionItemKind::KEYWORD,
                    Kind::Function => CompletionItemKind::FUNCTION,
                    Kind::Constant | Kind::Priority => CompletionItemKind::CONSTANT,
                    Kind::List => CompletionItemKind::VARIABLE,
                    Kind::Macro => CompletionItemKind::CONSTANT,
                    Kind::Module => CompletionItemKind::MODULE,
                    Kind::Field => CompletionItemKind::FIELD,
                }),
                detail: c.detail,
                documentation: c.documentation.map(|value| {
                    Documentation::MarkupContent(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value,
                    })
                }),
                // Names that need an import after those already in scope.
                sort_text: Some(format!("{}{}", u8::from(c.import.is_some()), c.label)),
                insert_text_format: Some(if snippet {
                    InsertTextFormat::SNIPPET
                } else {
                    InsertTextFormat::PLAIN_TEXT
                }),
                text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(
                    range(c.replace),
                    new_text,
                ))),
                additional_text_edits: c
                    .import
                    .map(|(line, at)| vec![TextEdit::new(range(Span::new(at, at)), line)]),
                label: c.label,
                ..CompletionItem::default()
            }
        });
        Some(items.collect())
    }

    /// `guardc fmt` as one edit covering the lines that change; nothing for a file with
    /// syntax errors (they are on screen already as diagnostics).
    fn format(&self, uri: &Uri) -> Option<Vec<TextEdit>> {
        let document = self.documents.get(uri)?;
        let Ok(formatted) = format_source(&document.text) else {
            self.log(
                MessageType::INFO,
                "guardc fmt: not formatted, the file has syntax errors".into(),
            );
            return None;
        };
        let (span, replacement) = changed_lines(&document.text, &formatted);
        Some(match span {
            None => Vec::new(),
            Some(span) => vec![TextEdit::new(
                document.lines.range(&document.text, span),
                replacement.to_string(),
            )],
        })
    }
}

/// The lines of `old` that differ from `new` (`None` if none does), and what replaces them:
/// a small edit keeps the editor's cursor and folds where they were.
fn changed_lines<'n>(old: &str, new: &'n str) -> (Option<Span>, &'n str) {
    if old == new {
        return (None, "");
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (
        old.split_inclusive('\n').collect(),
        new.split_inclusive('\n').collect(),
    );
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let bytes = |lines: &[&str]| lines.iter().map(|l| l.len()).sum::<usize>();
    let start = bytes(&a[..prefix]);
    let old_end = old.len() - bytes(&a[a.len() - suffix..]);
    let new_end = new.len() - bytes(&b[b.len() - suffix..]);
    (
        Some(Span::new(start, old_end)),
        new.get(start..new_end).unwrap_or_default(),
    )
}

fn parse<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, Failure> {
    serde_json::from_value(params).map_err(|e| (ErrorCode::InvalidParams as i32, e.to_string()))
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_edits_only_the_lines_that_change() {
        let (span, text) = changed_lines("a\nb  c\nd\n", "a\nb c\nd\n");
        assert_eq!((span, text), (Some(Span::new(2, 7)), "b c\n"));
        assert_eq!(changed_lines("a\n", "a\n"), (None, ""));
        let (span, text) = changed_lines("x", "x\n");
        assert_eq!((span, text), (Some(Span::new(0, 1)), "x\n"));
    }
}
