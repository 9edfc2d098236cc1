/**
 * `ferry recover`: continue a post-copy paused by a broken link, given the
 * QMP control sockets of both sides (as `virsh migrate --postcopy-resume`):
 * migrate-recover on the destination, migrate with resume on the source
 * (client/recover-postcopy.ts).
 */
import { parseArgs } from 'node:util';
import { QmpClient } from '../control/qmp-client.js';
import { recoverPostcopy } from '../client/recover-postcopy.js';
import { QmpError } from '../control/qmp-commands.js';
import { parseControlUri, parseUri } from '../transport/uri.js';

export const RECOVER_USAGE = `usage: ferry recover --source CONTROL --destination CONTROL [--listen URI]

Continue a post-copy that a broken link paused (postcopy-paused on both
sides; nothing was lost): the destination listens again, the source
connects there and sends the pages the destination still lacks.

  --source CONTROL       the source's QMP control socket (ferry run --qmp)
  --destination CONTROL  the destination's (ferry incoming --qmp)
  --listen URI           where the destination listens for the recovery; the
                         source must reach it (default tcp:127.0.0.1:0: loopback, any free port)
  -h, --help             this text

exit codes: 0 recovered (post-copy runs again, or completed), 1 refused
  (nothing paused) or paused again (the reason is printed), 2 bad usage or unreachable`;

export async function recoverCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      source: { type: 'string' }, destination: { type: 'string' }, listen: { type: 'string', default: 'tcp:127.0.0.1:0' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(RECOVER_USAGE);
    return 0;
  }
  if (values.source === undefined || values.destination === undefined) {
    console.error(`ferry recover: --source CONTROL and --destination CONTROL are required\n\n${RECOVER_USAGE}`);
    return 2;
  }
  parseControlUri(values.source);
  parseControlUri(values.destination);
  parseUri(values.listen);
  const source = await QmpClient.connect(values.source);
  try {
    const destination = await QmpClient.connect(values.destination);
    try {
      const r = await recoverPostcopy(source, destination, values.listen).catch((err: unknown) => {
        if (err instanceof QmpError) return err;
        throw err;
      });
      if (r instanceof QmpError) {
        console.log(`ferry recover: refused: ${r.message}`);
        return 1;
      }
      if (r.status === 'postcopy-active' || r.status === 'completed') {
        console.log(`ferry recover: recovered over ${r.address}: the migration is ${r.status}`);
        return 0;
      }
      console.log(`ferry recover: not recovered over ${r.address}: the migration is ${r.status}${r.reason === null ? '' : ` (${r.reason})`}`);
      return 1;
    } finally {
      destination.close();
    }
  } finally {
    source.close();
  }
}
