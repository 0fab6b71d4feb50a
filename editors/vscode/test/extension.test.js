// The extension without VS Code: `vscode` and `vscode-languageclient/node` are replaced by
// stand-ins that record what the extension asks of them. Run with `node --test test/` (and by
// compiler/tests/grammar.rs).
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');

const root = path.join(__dirname, '..');
const recorded = { clients: [], commands: {}, settings: {} };

class LanguageClient {
  constructor(id, name, server, client) {
    Object.assign(this, { id, name, server, client, running: false });
    recorded.clients.push(this);
  }
  async start() { this.running = true; }
  async stop() { this.running = false; }
}

const vscode = {
  workspace: {
    getConfiguration: (section) => ({
      get: (key) => recorded.settings[`${section}.${key}`],
    }),
  },
  commands: {
    registerCommand: (name, callback) => {
      recorded.commands[name] = callback;
      return { dispose() {} };
    },
  },
};

const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === 'vscode') return vscode;
  if (request === 'vscode-languageclient/node') return { LanguageClient };
  return load.call(this, request, ...rest);
};
const extension = require(path.join(root, 'extension.js'));

test('activation starts `guardc lsp` over stdio for guard files', async () => {
  const context = { subscriptions: [] };
  await extension.activate(context);
  const client = recorded.clients.at(-1);
  assert.deepStrictEqual(client.server, { command: 'guardc', args: ['lsp'] });
  assert.strictEqual(client.running, true);
  assert.deepStrictEqual(
    client.client.documentSelector.map((s) => s.language),
    ['guard', 'guard'],
  );
  assert.ok(recorded.commands['guard.restartServer']);
  assert.strictEqual(context.subscriptions.length, 1);
  await extension.deactivate();
  assert.strictEqual(client.running, false);
});

test('settings choose the server and its arguments; restart starts a new one', async () => {
  recorded.settings['guard.server.path'] = '/opt/guard/bin/guardc';
  recorded.settings['guard.server.extraArgs'] = ['--stdlib-dir', '/srv/stdlib'];
  await recorded.commands['guard.restartServer']();
  assert.deepStrictEqual(recorded.clients.at(-1).server, {
    command: '/opt/guard/bin/guardc',
    args: ['lsp', '--stdlib-dir', '/srv/stdlib'],
  });
});

test('the manifest contributes the language, its configuration and the grammar', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const [language] = manifest.contributes.languages;
  assert.strictEqual(language.id, 'guard');
  assert.deepStrictEqual(language.extensions, ['.grd']);
  JSON.parse(fs.readFileSync(path.join(root, language.configuration), 'utf8'));
  const [grammar] = manifest.contributes.grammars;
  assert.strictEqual(grammar.language, 'guard');
  // The grammar is copied from the repository's grammar/ when the extension is installed.
  require(path.join(root, 'scripts', 'copy-grammar.js'));
  const copy = fs.readFileSync(path.join(root, grammar.path), 'utf8');
  const source = fs.readFileSync(path.join(root, '..', '..', 'grammar', 'guard.tmLanguage.json'), 'utf8');
  assert.strictEqual(copy, source);
  assert.strictEqual(JSON.parse(copy).scopeName, grammar.scopeName);
  assert.strictEqual(manifest.main, './extension.js');
});
