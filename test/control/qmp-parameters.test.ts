import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { GuestController } from '../../src/control/controller.js';
import { QmpClient } from '../../src/control/qmp-client.js';
import { QmpServer } from '../../src/control/qmp-server.js';
import { MiB, address, destroyAll, guest, sleep } from '../migration/helpers.js';
import { spySteps } from '../migration/step-spy.js';

after(destroyAll);

const dir = mkdtempSync(join(tmpdir(), 'ferry-qmp-params-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('x-ferry-mainloop-step-cap and x-ferry-zero-page-budget set during a migration take effect', async () => {
  const src = await guest({ ram: 16 * MiB, vcpus: [{ kind: 'sweep', sweepsPerSec: 20 }] });
  await src.cont();
  for (let i = 0; i < 1000 && src.pagesWritten < (2 * src.ramSize) / 4096; i++) await sleep(10);
  const ctl = new GuestController(src);
  const server = await QmpServer.listen(address('unix', 'qmp'), ctl);
  const qmp = await QmpClient.connect(server.uri);
  const spy = spySteps();
  try {
    await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ferry-mainloop', state: true }] });
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 * MiB });
    await qmp.execute('migrate', { uri: `file:${join(dir, 'live.ferry')}` });
    const first = await spy.waitFor(() => true, 'at all');
    assert.equal(first.allowedNs, Infinity, 'no cap at first');
    await qmp.execute('migrate-set-parameters', { 'x-ferry-mainloop-step-cap': 7, 'x-ferry-zero-page-budget': 9 });
    assert.equal(((await qmp.execute('query-migrate')) as { status: string }).status, 'active');
    await spy.waitFor((s) => s.allowedNs <= 7e6, 'capped at 7 ms after migrate-set-parameters', 5);
    await spy.waitFor((s) => s.zeroPageBudgetBytes === 9, 'charging 9 bytes per zero page after migrate-set-parameters', 5);
  } finally {
    spy.restore();
    ctl.migration?.cancel();
    await ctl.migration?.done();
    qmp.close();
    server.close();
  }
});
