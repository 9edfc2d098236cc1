#!/usr/bin/env node
/** The `ferry` command line. */
import { benchCommand } from './bench.js';
import { cancelCommand } from './cancel.js';
import { demoCommand } from './demo.js';
import { incomingCommand } from './incoming.js';
import { migrateCommand } from './migrate.js';
import { recoverCommand } from './recover.js';
import { statusCommand } from './status.js';
import { runCommand, RUN_USAGE } from './run.js';

const USAGE = `usage: ferry <command> [options]

ferry moves a running guest between processes while it keeps running.

commands:
  demo       migrate a busy guest between two processes on loopback, verified
  bench      the benchmark suite: limits, scenarios, targets (--quick: under 2 minutes)
  run        start a guest and run a workload; --migrate-to sends it elsewhere
  incoming   wait for a guest to migrate in, run it and check it
  migrate    migrate the guest behind a QMP control socket (ferry run --qmp)
  cancel     cancel the migration of the guest behind a QMP control socket
  recover    continue a post-copy paused by a broken link (QMP sockets of both sides)
  status     show the guest behind a QMP control socket and its migration

Run 'ferry <command> --help' for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return runCommand(rest);
    case 'incoming':
      return incomingCommand(rest);
    case 'migrate':
      return migrateCommand(rest);
    case 'cancel':
      return cancelCommand(rest);
    case 'recover':
      return recoverCommand(rest);
    case 'status':
      return statusCommand(rest);
    case 'demo':
      return demoCommand(rest);
    case 'bench':
      return benchCommand(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`ferry: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err as { code?: string; message?: string };
    if (typeof e?.code === 'string' && (e.code.startsWith('ERR_FERRY_') || e.code.startsWith('ERR_PARSE_ARGS'))) {
      console.error(`ferry: ${e.message}`);
      process.exitCode = 2;
    } else {
      console.error(err);
      process.exitCode = 1;
    }
  },
);

export { RUN_USAGE };
