/**
 * The README's library example (issue 12 item 9): the README holds
 * examples/library.ts verbatim, and the example, built with the rest,
 * runs both sides of a migration and ends as it says.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { bounded, fileLimit } from '../waits.js';

fileLimit(import.meta.url, 120_000);

const root = new URL('../../../', import.meta.url); // dist/test/examples/ -> the repository
const example = fileURLToPath(new URL('dist/examples/library.js', root));

test('the README shows examples/library.ts verbatim, in a ts code block', () => {
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  const source = readFileSync(new URL('examples/library.ts', root), 'utf8');
  assert.ok(readme.includes(`\`\`\`ts\n${source}\`\`\`\n`), 'README.md must hold examples/library.ts, unchanged, in a ```ts block');
  assert.match(source, /onGuest/, 'the destination side is shown');
});

test('the library example migrates its guest and its device state, and exits', async () => {
  // execFile's timeout kills the child if it hangs: nothing outlives the test.
  const { stdout } = await bounded('the example to exit', promisify(execFile)(process.execPath, [example], { timeout: 60_000 }), 70_000);
  assert.equal(stdout.trim().split('\n').at(-1), 'hello, hello: running here, postmigrate there');
});
