// The grammar lives in the repository's grammar/ (one file for every editor); the extension
// carries a copy, made when the extension is installed (`npm install`) or packaged.
const fs = require('fs');
const path = require('path');

const source = path.join(__dirname, '..', '..', '..', 'grammar', 'guard.tmLanguage.json');
const target = path.join(__dirname, '..', 'syntaxes', 'guard.tmLanguage.json');
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.copyFileSync(source, target);
