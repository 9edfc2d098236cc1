/*
 * sqlite-load: a database under write load, deterministic.
 *
 *   sqlite-load ROWS SEED [DBFILE]
 *
 * Creates two tables (accounts, transfers; an index on each), then makes
 * ROWS transfers between accounts in transactions of BATCH rows: each
 * inserts a transfer row with a text note, updates the two accounts'
 * balances, and every 7th also raises the amount of an older transfer
 * (so writes land all over the database, not only at its end). All values
 * come from splitmix64 seeded by SEED: the output is fixed by the
 * arguments. After each transaction it runs an aggregate over accounts and
 * two index lookups, and every JOIN_EVERY transactions and at the end a
 * join grouped by account group; it checks every result against its own
 * model of the data kept in plain C arrays, and stops with "MISMATCH" and
 * exit code 1 if SQLite disagrees. The last line is a checksum of the final
 * query results. DBFILE is ":memory:" by default; a path in a preopened
 * directory puts the database (and its rollback journal) in a file.
 * The output does not depend on DBFILE.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sqlite3.h"

#define USAGE "sqlite-load ROWS SEED [DBFILE]"
#define BATCH 1000       /* rows per transaction; a progress line after each */
#define JOIN_EVERY 20    /* transactions between two runs of the join */
#define GROUPS 7         /* accounts.grp = id % GROUPS */
#define NOTE_MAX 64

struct model {
  int64_t accounts, rows, amount_sum;
  int64_t *balance, *moves, *out_count, *out_sum; /* per account, 1-based */
  int32_t *src, *dst, *amount;                    /* per transfer, 1-based */
  int64_t in_count[GROUPS], in_sum[GROUPS];
};

struct statements {
  sqlite3_stmt *insert_account, *insert_transfer, *move, *raise;
  sqlite3_stmt *balances, *by_owner, *by_src, *join, *totals, *all_accounts;
};

static sqlite3 *db;

static void fail(const char *what) {
  fprintf(stderr, "sqlite-load: %s: %s\n", what, db ? sqlite3_errmsg(db) : "no database");
  exit(1);
}

static void mismatch(const char *what, int64_t sql, int64_t expected) {
  fprintf(stderr, "MISMATCH %s: SQLite says %" PRId64 ", the model %" PRId64 "\n", what, sql, expected);
  exit(1);
}

static void expect(const char *what, int64_t sql, int64_t expected) {
  if (sql != expected) mismatch(what, sql, expected);
}

static void exec(const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "sqlite-load: %s: %s\n", sql, err ? err : "?");
    exit(1);
  }
}

static sqlite3_stmt *prepare(const char *sql) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) fail(sql);
  return s;
}

/* Run a statement that returns no row, then reset it for the next use. */
static void run(sqlite3_stmt *s, const char *what) {
  if (sqlite3_step(s) != SQLITE_DONE) fail(what);
  sqlite3_reset(s);
}

/* Step to the next row of a query: 1 if there is one, 0 at the end. */
static int row(sqlite3_stmt *s, const char *what) {
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) return 1;
  if (rc != SQLITE_DONE) fail(what);
  sqlite3_reset(s);
  return 0;
}

static void *zalloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  if (!p) { fprintf(stderr, "sqlite-load: out of memory for the model\n"); exit(1); }
  return p;
}

static void open_schema(const char *path) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) fail(path);
  exec("DROP TABLE IF EXISTS transfers; DROP TABLE IF EXISTS accounts;"
       "CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT NOT NULL, grp INTEGER NOT NULL,"
       " balance INTEGER NOT NULL, moves INTEGER NOT NULL DEFAULT 0);"
       "CREATE UNIQUE INDEX accounts_owner ON accounts(owner);"
       "CREATE TABLE transfers(id INTEGER PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL,"
       " amount INTEGER NOT NULL, note TEXT NOT NULL);"
       "CREATE INDEX transfers_src ON transfers(src);");
}

static void prepare_all(struct statements *st) {
  st->insert_account = prepare("INSERT INTO accounts(id, owner, grp, balance) VALUES(?1, ?2, ?1 % 7, ?3)");
  st->insert_transfer = prepare("INSERT INTO transfers(id, src, dst, amount, note) VALUES(?, ?, ?, ?, ?)");
  st->move = prepare("UPDATE accounts SET balance = balance + ?1, moves = moves + 1 WHERE id = ?2");
  st->raise = prepare("UPDATE transfers SET amount = amount + 1 WHERE id = ?");
  st->balances = prepare("SELECT sum(balance), min(balance), max(balance) FROM accounts");
  st->by_owner = prepare("SELECT id, balance FROM accounts WHERE owner = ?");
  st->by_src = prepare("SELECT count(*), coalesce(sum(amount), 0) FROM transfers WHERE src = ?");
  st->join = prepare("SELECT a.grp, count(*), sum(t.amount) FROM transfers t JOIN accounts a ON a.id = t.dst"
                     " GROUP BY a.grp ORDER BY a.grp");
  st->totals = prepare("SELECT count(*), coalesce(sum(amount), 0) FROM transfers");
  st->all_accounts = prepare("SELECT id, balance, moves FROM accounts ORDER BY id");
}

static void finalize_all(struct statements *st) {
  sqlite3_stmt *all[] = {st->insert_account, st->insert_transfer, st->move, st->raise, st->balances,
                         st->by_owner, st->by_src, st->join, st->totals, st->all_accounts};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
}

/* The owner name of an account: unique, since 2654435761 is odd (a bijection mod 2^32). */
static void owner_of(int64_t id, char out[16]) {
  snprintf(out, 16, "owner-%08" PRIx32, (uint32_t)((uint32_t)id * 2654435761u));
}

static void create_accounts(struct model *m, struct statements *st, uint64_t *prng) {
  char owner[16];
  exec("BEGIN");
  for (int64_t id = 1; id <= m->accounts; id++) {
    m->balance[id] = (int64_t)(prng_next(prng) % 10000);
    owner_of(id, owner);
    sqlite3_bind_int64(st->insert_account, 1, id);
    sqlite3_bind_text(st->insert_account, 2, owner, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st->insert_account, 3, m->balance[id]);
    run(st->insert_account, "insert account");
  }
  exec("COMMIT");
}

static void move_money(struct statements *st, int64_t id, int64_t delta) {
  sqlite3_bind_int64(st->move, 1, delta);
  sqlite3_bind_int64(st->move, 2, id);
  run(st->move, "update balance");
}

/* One transfer: its row, both balances, and every 7th a raise of an older transfer. */
static void transfer(struct model *m, struct statements *st, uint64_t *prng) {
  int64_t r = ++m->rows;
  int32_t src = (int32_t)(prng_next(prng) % (uint64_t)m->accounts) + 1;
  int32_t dst = (int32_t)(prng_next(prng) % (uint64_t)m->accounts) + 1;
  int32_t amount = (int32_t)(prng_next(prng) % 1000) + 1;
  int len = 8 + (int)(prng_next(prng) % (NOTE_MAX - 8));
  char note[NOTE_MAX];
  for (int i = 0; i < len; i++) note[i] = (char)('a' + prng_next(prng) % 26);
  sqlite3_bind_int64(st->insert_transfer, 1, r);
  sqlite3_bind_int64(st->insert_transfer, 2, src);
  sqlite3_bind_int64(st->insert_transfer, 3, dst);
  sqlite3_bind_int64(st->insert_transfer, 4, amount);
  sqlite3_bind_text(st->insert_transfer, 5, note, len, SQLITE_TRANSIENT);
  run(st->insert_transfer, "insert transfer");
  move_money(st, src, -amount);
  move_money(st, dst, amount);
  m->src[r] = src; m->dst[r] = dst; m->amount[r] = amount;
  m->balance[src] -= amount; m->balance[dst] += amount;
  m->moves[src]++; m->moves[dst]++;
  m->out_count[src]++; m->out_sum[src] += amount;
  m->in_count[dst % GROUPS]++; m->in_sum[dst % GROUPS] += amount;
  m->amount_sum += amount;
  if (r % 7 != 0) return;
  int64_t older = (int64_t)(prng_next(prng) % (uint64_t)r) + 1;
  sqlite3_bind_int64(st->raise, 1, older);
  run(st->raise, "raise transfer");
  m->amount[older]++; m->amount_sum++;
  m->out_sum[m->src[older]]++; m->in_sum[m->dst[older] % GROUPS]++;
}

/* The aggregate over accounts and the two index lookups, checked; one progress line. */
static void progress(const struct model *m, struct statements *st, int64_t batch) {
  int64_t sum = 0, min = INT64_MAX, max = INT64_MIN;
  for (int64_t id = 1; id <= m->accounts; id++) {
    int64_t b = m->balance[id];
    sum += b; if (b < min) min = b; if (b > max) max = b;
  }
  if (!row(st->balances, "balances")) fail("balances: no row");
  expect("sum(balance)", sqlite3_column_int64(st->balances, 0), sum);
  expect("min(balance)", sqlite3_column_int64(st->balances, 1), min);
  expect("max(balance)", sqlite3_column_int64(st->balances, 2), max);
  sqlite3_reset(st->balances);
  int64_t k = (batch * 7919) % m->accounts + 1;
  char owner[16];
  owner_of(k, owner);
  sqlite3_bind_text(st->by_owner, 1, owner, -1, SQLITE_TRANSIENT);
  if (!row(st->by_owner, "account by owner")) fail("account by owner: no row");
  expect("account id by owner", sqlite3_column_int64(st->by_owner, 0), k);
  expect("balance by owner", sqlite3_column_int64(st->by_owner, 1), m->balance[k]);
  sqlite3_reset(st->by_owner);
  sqlite3_bind_int64(st->by_src, 1, k);
  if (!row(st->by_src, "transfers by src")) fail("transfers by src: no row");
  expect("count by src", sqlite3_column_int64(st->by_src, 0), m->out_count[k]);
  expect("sum by src", sqlite3_column_int64(st->by_src, 1), m->out_sum[k]);
  sqlite3_reset(st->by_src);
  printf("rows %" PRId64 ": balances sum %" PRId64 " min %" PRId64 " max %" PRId64
         "; account %" PRId64 " balance %" PRId64 ", sent %" PRId64 " for %" PRId64 "\n",
         m->rows, sum, min, max, k, m->balance[k], m->out_count[k], m->out_sum[k]);
}

/* The join, checked group by group; returns the hash of its rows. */
static uint64_t join(const struct model *m, struct statements *st, uint64_t h) {
  int64_t g = 0, n = 0, total = 0;
  while (row(st->join, "join")) {
    int64_t grp = sqlite3_column_int64(st->join, 0);
    while (g < GROUPS && m->in_count[g] == 0) g++;
    expect("join group", grp, g);
    expect("join count", sqlite3_column_int64(st->join, 1), m->in_count[g]);
    expect("join sum", sqlite3_column_int64(st->join, 2), m->in_sum[g]);
    h = fnv1a64_u64(fnv1a64_u64(fnv1a64_u64(h, (uint64_t)g), (uint64_t)m->in_count[g]), (uint64_t)m->in_sum[g]);
    n += m->in_count[g]; total += m->in_sum[g]; g++;
  }
  while (g < GROUPS && m->in_count[g] == 0) g++;
  expect("join groups", g, GROUPS);
  printf("join at rows %" PRId64 ": %" PRId64 " transfers, %" PRId64 " received, hash %016" PRIx64 "\n",
         m->rows, n, total, h);
  return h;
}

/* The final queries, checked: totals, every account, the join; returns the checksum. */
static uint64_t final_checksum(const struct model *m, struct statements *st) {
  if (!row(st->totals, "totals")) fail("totals: no row");
  expect("count(*) transfers", sqlite3_column_int64(st->totals, 0), m->rows);
  expect("sum(amount)", sqlite3_column_int64(st->totals, 1), m->amount_sum);
  sqlite3_reset(st->totals);
  uint64_t h = fnv1a64_u64(fnv1a64_u64(FNV64_OFFSET, (uint64_t)m->rows), (uint64_t)m->amount_sum);
  int64_t id = 0;
  while (row(st->all_accounts, "all accounts")) {
    id++;
    expect("account id", sqlite3_column_int64(st->all_accounts, 0), id);
    expect("account balance", sqlite3_column_int64(st->all_accounts, 1), m->balance[id]);
    expect("account moves", sqlite3_column_int64(st->all_accounts, 2), m->moves[id]);
    h = fnv1a64_u64(fnv1a64_u64(h, (uint64_t)m->balance[id]), (uint64_t)m->moves[id]);
  }
  expect("accounts", id, m->accounts);
  printf("final: %" PRId64 " transfers, amount sum %" PRId64 ", accounts hash %016" PRIx64 "\n",
         m->rows, m->amount_sum, h);
  return join(m, st, h);
}

static void model_init(struct model *m, int64_t rows) {
  memset(m, 0, sizeof *m);
  m->accounts = rows / 50 < 10 ? 10 : rows / 50;
  m->balance = zalloc((size_t)m->accounts + 1, sizeof(int64_t));
  m->moves = zalloc((size_t)m->accounts + 1, sizeof(int64_t));
  m->out_count = zalloc((size_t)m->accounts + 1, sizeof(int64_t));
  m->out_sum = zalloc((size_t)m->accounts + 1, sizeof(int64_t));
  m->src = zalloc((size_t)rows + 1, sizeof(int32_t));
  m->dst = zalloc((size_t)rows + 1, sizeof(int32_t));
  m->amount = zalloc((size_t)rows + 1, sizeof(int32_t));
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* each progress line is written when it is made */
  if (argc < 3 || argc > 4) usage_exit(USAGE, "expected 2 or 3 arguments");
  int64_t rows = (int64_t)parse_arg(USAGE, "ROWS", argv[1], 1, 50000000);
  uint64_t prng = parse_arg(USAGE, "SEED", argv[2], 0, UINT64_MAX);
  struct model m;
  struct statements st;
  model_init(&m, rows);
  open_schema(argc == 4 ? argv[3] : ":memory:");
  prepare_all(&st);
  printf("sqlite-load: SQLite %s, %" PRId64 " rows, seed %s, %" PRId64 " accounts\n",
         sqlite3_libversion(), rows, argv[2], m.accounts);
  create_accounts(&m, &st, &prng);
  for (int64_t batch = 1; m.rows < rows; batch++) {
    exec("BEGIN");
    for (int i = 0; i < BATCH && m.rows < rows; i++) transfer(&m, &st, &prng);
    exec("COMMIT");
    progress(&m, &st, batch);
    if (batch % JOIN_EVERY == 0) join(&m, &st, FNV64_OFFSET);
  }
  uint64_t checksum = final_checksum(&m, &st);
  finalize_all(&st);
  if (sqlite3_close(db) != SQLITE_OK) fail("close");
  printf("self-check: ok, every result equals the driver's own model\n");
  printf("checksum %016" PRIx64 "\n", checksum);
  return 0;
}
