// Tokenizes guard files with vscode-textmate and vscode-oniguruma, the engine and regex library
// VS Code itself uses, and checks the scopes against expectations derived from the compiler's
// own lexer. Run by compiler/tests/grammar.rs (`cargo test`), which writes the expectations;
// by hand: `node grammar/test/tokenize.mjs EXPECTATIONS.json`.
//
// EXPECTATIONS.json: {"files": [{"path": "...", "expect": [{"line": 0, "character": 0,
// "scope": "keyword.control", "text": "guard"}]}]}, positions in UTF-16 units, as JavaScript
// strings count them. Checked: every token that is not whitespace has a scope besides
// `source.guard`, and the token at each expected position has a scope starting with the
// expected one.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const here = path.dirname(fileURLToPath(import.meta.url));
const grammarPath = path.join(here, '..', 'guard.tmLanguage.json');

async function loadGrammar() {
  const wasm = fs.readFileSync(path.join(path.dirname(require.resolve('vscode-oniguruma')), 'onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) =>
      scopeName === 'source.guard'
        ? vsctm.parseRawGrammar(fs.readFileSync(grammarPath, 'utf8'), grammarPath)
        : null,
  });
  return registry.loadGrammar('source.guard');
}

/** Each line's tokens: {start, end, scopes}. */
function tokenize(grammar, text) {
  let stack = vsctm.INITIAL;
  return text.split('\n').map((line) => {
    const result = grammar.tokenizeLine(line, stack);
    stack = result.ruleStack;
    return result.tokens.map((t) => ({ start: t.startIndex, end: t.endIndex, scopes: t.scopes }));
  });
}

async function main() {
  const expectationsPath = process.argv[2];
  if (!expectationsPath) {
    console.error('usage: node tokenize.mjs EXPECTATIONS.json');
    process.exit(2);
  }
  const { files } = JSON.parse(fs.readFileSync(expectationsPath, 'utf8'));
  const grammar = await loadGrammar();
  let passed = 0;
  const failures = [];
  for (const file of files) {
    const text = fs.readFileSync(file.path, 'utf8');
    const lines = text.split('\n');
    const tokens = tokenize(grammar, text);
    tokens.forEach((lineTokens, line) => {
      for (const t of lineTokens) {
        const piece = lines[line].slice(t.start, t.end);
        if (piece.trim() === '') continue;
        if (t.scopes.length > 1) {
          passed++;
        } else {
          failures.push(`${file.path}:${line + 1}:${t.start + 1}: \`${piece}\` has no scope`);
        }
      }
    });
    for (const e of file.expect) {
      const t = (tokens[e.line] || []).find((t) => t.start <= e.character && e.character < t.end);
      if (t && t.scopes.some((s) => s.startsWith(e.scope))) {
        passed++;
      } else {
        const got = t ? t.scopes.join(' ') : 'no token';
        failures.push(`${file.path}:${e.line + 1}:${e.character + 1}: \`${e.text}\` should be ${e.scope}, is ${got}`);
      }
    }
  }
  for (const f of failures.slice(0, 50)) console.error(f);
  if (failures.length > 50) console.error(`... and ${failures.length - 50} more`);
  console.log(`grammar: ${files.length} files, ${passed} passed, ${failures.length} failed`);
  process.exit(failures.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
