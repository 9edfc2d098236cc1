/**
 * Imports point one way (DESIGN.md section 3): every relative import in
 * src/ stays in its folder or goes to a folder of a lower row of LAYERS.
 * `npm run lint` has dpdm find cycles between files; this finds what dpdm
 * cannot: a loop between folders with no cycle between files (cli -> bench
 * -> cli was one) and any import the wrong way.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fileLimit } from './waits.js';

fileLimit(import.meta.url, 60_000);

/**
 * The folders of src/, top first. A folder may import the folders of the
 * rows below its own; folders of one row may not import each other. '.' is
 * src/'s own files (errors, tracing, the state machine).
 */
const LAYERS: readonly (readonly string[])[] = [
  ['cli'],
  ['bench'],
  ['client'],
  ['control'],
  ['migration'],
  ['guest', 'wire', 'transport'],
  ['wasm'],
  ['memory'],
  ['.', 'types'],
];

/** Files that only re-export the library (src/index.ts): above every layer. */
const EXEMPT = new Set(['index.ts']);

const RANK = new Map(LAYERS.flatMap((row, i) => row.map((folder) => [folder, LAYERS.length - i] as const)));

/** `from '...'`, `import('...')` and `import '...'`: the module names a file imports. */
const IMPORT_RE = /\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;

function folderOf(path: string): string {
  const slash = path.indexOf('/');
  return slash < 0 ? '.' : path.slice(0, slash);
}

/**
 * The imports that break the order, as "FILE -> IMPORTED (why)". `files`
 * maps each path under src/ ('cli/main.ts') to its text.
 */
function wrongWayImports(files: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  for (const [path, text] of files) {
    if (EXEMPT.has(path)) continue;
    const from = folderOf(path);
    for (const m of text.matchAll(IMPORT_RE)) {
      const name = m[1] ?? m[2] ?? m[3];
      if (!name.startsWith('.')) continue; // a package or node: builtin
      const target = posix.normalize(posix.join(posix.dirname(path), name));
      const to = folderOf(target);
      if (target.startsWith('../')) found.push(`${path} -> ${name} (leaves src/)`);
      else if (to === from) continue;
      else if (!RANK.has(from) || !RANK.has(to)) found.push(`${path} -> ${name} (folder ${RANK.has(from) ? to : from} is in no layer)`);
      else if (RANK.get(to)! >= RANK.get(from)!) found.push(`${path} -> ${name} (${from} may not import ${to})`);
    }
  }
  return found;
}

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Every .ts file under src/, by its path there. */
function sources(dir = '', files = new Map<string, string>()): Map<string, string> {
  for (const entry of readdirSync(posix.join(SRC, dir), { withFileTypes: true })) {
    const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) sources(path, files);
    else if (entry.name.endsWith('.ts')) files.set(path, readFileSync(posix.join(SRC, path), 'utf8'));
  }
  return files;
}

test('every import in src/ stays in its folder or points down the layers', () => {
  const files = sources();
  assert.ok(files.has('cli/main.ts') && files.size > 50, `read the sources from ${SRC}`);
  assert.deepEqual(wrongWayImports(files), []);
});

test('every folder of src/ has its place in the layers', () => {
  const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  assert.deepEqual(folders.filter((f) => !RANK.has(f)), []);
});

test('the check names an import up the layers, one across a row, and one that leaves src/; it lets pass imports down and within a folder', () => {
  const files = new Map([
    ['control/a.ts', "import { followMigration } from '../client/follow-migration.js';\nimport { Guest } from '../guest/guest.js';"],
    ['guest/b.ts', "import type {\n  Rec,\n} from '../wire/records.js';\nimport { x } from './c.js';"],
    ['bench/c.ts', "export * from '../../test/waits.js';\nconst m = await import('../cli/main.js');"],
    ['cli/d.ts', "import '../bench/suite.js';\nimport cliProgress from 'cli-progress';"],
    ['errors.ts', "import { trace } from './trace.js';"],
  ]);
  assert.deepEqual(wrongWayImports(files), [
    'control/a.ts -> ../client/follow-migration.js (control may not import client)',
    'guest/b.ts -> ../wire/records.js (guest may not import wire)',
    'bench/c.ts -> ../../test/waits.js (leaves src/)',
    'bench/c.ts -> ../cli/main.js (bench may not import cli)',
  ]);
});
