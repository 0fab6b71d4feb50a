// The guard extension: highlighting from the TextMate grammar (package.json), everything else
// from `guardc lsp`, started over stdio by vscode-languageclient.
const vscode = require('vscode');
const { LanguageClient } = require('vscode-languageclient/node');

let client;

/** How to start the server, from the `guard.server.*` settings. */
function serverOptions(config) {
  const command = config.get('server.path') || 'guardc';
  const args = ['lsp', ...(config.get('server.extraArgs') || [])];
  // No `transport`: the client then talks over the child's stdin and stdout without adding
  // `--stdio` to the arguments.
  return { command, args };
}

function clientOptions() {
  return {
    documentSelector: [
      { scheme: 'file', language: 'guard' },
      { scheme: 'untitled', language: 'guard' },
    ],
  };
}

async function start() {
  const config = vscode.workspace.getConfiguration('guard');
  client = new LanguageClient('guard', 'guard', serverOptions(config), clientOptions());
  await client.start();
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('guard.restartServer', async () => {
      if (client) await client.stop();
      await start();
    }),
  );
  await start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate, serverOptions, clientOptions };
