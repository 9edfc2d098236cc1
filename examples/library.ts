import { Guest, IncomingMigration, Migration } from 'ferry';

const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const decode = (data: Uint8Array) => JSON.parse(new TextDecoder().decode(data));

// The destination (usually another process or host): listen, and register on the
// guest that arrives the same device sections as the source, before any is loaded.
let arrived = { greeting: '' };
const incoming = await IncomingMigration.listen('tcp:127.0.0.1:0', {
  onGuest: (guest) => guest.devices.register({
    name: 'app/config', version: 1,
    save: () => encode(arrived),
    load: (data) => { arrived = decode(data); },
  }),
});

// The source: an application that is a guest itself. Its writes to guest RAM
// are marked in the dirty log; its device section is saved at switchover.
let config = { greeting: 'hello' };
const source = await Guest.create({ ram: 64 * 1024 * 1024, vcpus: [] });
source.devices.register({
  name: 'app/config', version: 1,
  save: () => encode(config),
  load: (data) => { config = decode(data); },
});
await source.cont();
source.ram.write(0, new TextEncoder().encode('hello'));

// Migrate; completed() rejects with a coded error (e.g. ERR_FERRY_TRANSPORT) if it failed.
await Migration.start(source, incoming.uri, { downtimeLimitMs: 300 }).completed();
const { guest } = await incoming.resumed(); // runs here now; the source is 'postmigrate'
console.log(`${new TextDecoder().decode(guest!.ram.read(0, 5))}, ${arrived.greeting}: ${guest!.runState} here, ${source.runState} there`);
await Promise.all([guest!.destroy(), source.destroy()]);
