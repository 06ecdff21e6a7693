/**
 * Versioned schema migrations, in code (no migration folder to ship), run by kysely's Migrator
 * when a store opens. A migration is never edited once released: a change is a new entry.
 *
 * The database holds the store's constraints itself (types.ts), so that two writers racing, or
 * a person with a SQL prompt, cannot break them:
 * - chips: one row per EID (a released chip is replaced in place, its `generation` raised);
 *   the counter never moves down within a generation, and every raise is recorded in
 *   used_counters, whose primary key (eid, generation, counter) refuses a reused value;
 * - transfers: permission_id UNIQUE; a partial unique index allows one non-terminal transfer per
 *   chip and direction; direction and EID never change; states are checked per direction;
 * - audit: append-only (UPDATE, DELETE and, on PostgreSQL, TRUNCATE are refused by triggers);
 *   each entry must follow the last one (seq + 1, prev_hash = its hash);
 * - idempotency_keys (0002): one row per operator and key, a response only once done;
 * - bulk_jobs, bulk_items (0003): bulk transfer jobs and their chips, one item per (job, EID);
 * - outbox_device_work (0004): an index for the batch device poll (StoreTx.eidsWithDeviceWork);
 * - transfers.expiry_deadline (0005): when a transfer falls due for expiry, indexed;
 * - bulk_items_started (0006): an index for a bulk job's items started within the rate window.
 */
import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import { expiryDeadline } from '../../domain/expiry-deadline.ts';
import type { Database, SqlDialect } from './schema.ts';
import { transferOf } from './transfers.ts';

/** Non-terminal states (transfer-states.ts), frozen here as of this migration. */
export const OPEN_OUTGOING_STATES = ['requested', 'awaitingApproval', 'permitted', 'delivered'] as const;
export const OPEN_INCOMING_STATES = ['ordered', 'asked', 'permitted', 'keyEstablished'] as const;
const OUTGOING_STATES = [...OPEN_OUTGOING_STATES, 'completed', 'rejected', 'cancelled', 'expired'];
const INCOMING_STATES = [...OPEN_INCOMING_STATES, 'completed', 'failed', 'expired'];
const COUNTER_MAX = 2147483647;

const list = (values: readonly string[]): string => values.map((v) => `'${v}'`).join(', ');

interface Ddl {
  readonly bytes: string;
  readonly time: string;
  readonly json: string;
  readonly int: string;
  readonly bigint: string;
  readonly text: string;
  /** Table options after the closing parenthesis. */
  readonly strict: string;
  /** The insertion-order column. */
  readonly pos: string;
  /** The natural key of a table (`id`, `eid`): the primary key in PostgreSQL, UNIQUE in SQLite. */
  key(name: string): string;
  bool(column: string, notNull: boolean): string;
}

const SQLITE: Ddl = {
  bytes: 'BLOB',
  time: 'TEXT',
  json: 'TEXT',
  int: 'INTEGER',
  bigint: 'INTEGER',
  text: 'TEXT',
  strict: ' STRICT',
  pos: 'pos INTEGER PRIMARY KEY',
  key: (name) => `CONSTRAINT ${name} UNIQUE`,
  bool: (column, notNull) => `${column} INTEGER${notNull ? ' NOT NULL' : ''} CHECK (${column} IN (0, 1))`,
};

const POSTGRES: Ddl = {
  bytes: 'bytea',
  time: 'timestamptz',
  json: 'jsonb',
  int: 'integer',
  bigint: 'bigint',
  text: 'text',
  strict: '',
  pos: 'pos bigint GENERATED ALWAYS AS IDENTITY UNIQUE',
  key: (name) => `CONSTRAINT ${name} PRIMARY KEY`,
  bool: (column, notNull) => `${column} boolean${notNull ? ' NOT NULL' : ''}`,
};

function tables(t: Ddl): string[] {
  const outgoingOnly = [
    'origin',
    'peer_ask_id',
    'new_sm_address',
    'activation_code_hash',
    'profile_switch',
    'unlocked_with_code',
    'approval_deadline',
    'permission',
    'cancel',
  ];
  const incomingOnly = ['order_id', 'peer_transfer_id', 'expires_at', 'request', 'receipt_key', 'keyset'];
  const isNull = (columns: readonly string[]) => columns.map((c) => `${c} IS NULL`).join(' AND ');
  const deliveryColumns = ['attempts', 'next_attempt_at', 'last_error', 'delivered_at'];
  const deviceColumns = ['kind', 'bytes', 'deliveries', 'last_delivered_at'];
  return [
    `CREATE TABLE chips (
      ${t.pos},
      eid ${t.text} NOT NULL ${t.key('chips_pk')},
      generation ${t.int} NOT NULL CHECK (generation >= 1),
      operator_id ${t.text} NOT NULL,
      chip_certificate ${t.bytes} NOT NULL,
      eum_certificate ${t.bytes} NOT NULL,
      curve ${t.text} NOT NULL CHECK (curve IN ('p256', 'brainpoolP256r1')),
      counter ${t.int} NOT NULL CHECK (counter BETWEEN 0 AND ${COUNTER_MAX}),
      status ${t.text} NOT NULL CHECK (status IN ('managed', 'transferring', 'released')),
      lock ${t.json} NOT NULL,
      keyset ${t.json},
      profile_switch ${t.json},
      created_at ${t.time} NOT NULL,
      updated_at ${t.time} NOT NULL
    )${t.strict}`,
    `CREATE INDEX chips_operator ON chips (operator_id)`,
    `CREATE TABLE used_counters (
      eid ${t.text} NOT NULL REFERENCES chips (eid),
      generation ${t.int} NOT NULL,
      counter ${t.int} NOT NULL CHECK (counter BETWEEN 1 AND ${COUNTER_MAX}),
      CONSTRAINT used_counters_pk PRIMARY KEY (eid, generation, counter)
    )${t.strict}`,
    `CREATE TABLE transfers (
      ${t.pos},
      id ${t.text} NOT NULL ${t.key('transfers_pk')},
      direction ${t.text} NOT NULL CHECK (direction IN ('outgoing', 'incoming')),
      state ${t.text} NOT NULL,
      eid ${t.text} NOT NULL,
      operator_id ${t.text} NOT NULL,
      peer_sm_id ${t.text} NOT NULL,
      permission_id ${t.bytes} CONSTRAINT transfers_permission_id_unique UNIQUE,
      created_at ${t.time} NOT NULL,
      updated_at ${t.time} NOT NULL,
      end_reason ${t.text},
      evidence ${t.bytes},
      origin ${t.text} CHECK (origin IN ('operator', 'peer')),
      peer_ask_id ${t.text},
      new_sm_address ${t.text},
      activation_code_hash ${t.bytes},
      profile_switch ${t.json},
      ${t.bool('unlocked_with_code', false)},
      approval_deadline ${t.time},
      permission ${t.json},
      cancel ${t.json},
      order_id ${t.text},
      peer_transfer_id ${t.text},
      expires_at ${t.time},
      request ${t.json},
      receipt_key ${t.bytes},
      keyset ${t.json},
      CONSTRAINT transfers_shape CHECK (
        (direction = 'outgoing' AND state IN (${list(OUTGOING_STATES)})
          AND origin IS NOT NULL AND new_sm_address IS NOT NULL AND unlocked_with_code IS NOT NULL
          AND ${isNull(incomingOnly)})
        OR (direction = 'incoming' AND state IN (${list(INCOMING_STATES)})
          AND order_id IS NOT NULL AND expires_at IS NOT NULL
          AND ${isNull(outgoingOnly)})
      )
    )${t.strict}`,
    `CREATE UNIQUE INDEX transfers_one_open ON transfers (eid, direction) WHERE
      (direction = 'outgoing' AND state IN (${list(OPEN_OUTGOING_STATES)}))
      OR (direction = 'incoming' AND state IN (${list(OPEN_INCOMING_STATES)}))`,
    `CREATE INDEX transfers_eid ON transfers (eid)`,
    `CREATE INDEX transfers_operator ON transfers (operator_id)`,
    `CREATE INDEX transfers_state ON transfers (state)`,
    `CREATE TABLE orders (
      ${t.pos},
      id ${t.text} NOT NULL ${t.key('orders_pk')},
      operator_id ${t.text} NOT NULL,
      eid ${t.text} NOT NULL,
      current_sm_id ${t.text} NOT NULL,
      activation_code_hash ${t.bytes},
      ${t.bool('ask', true)},
      state ${t.text} NOT NULL CHECK (state IN ('open', 'matched', 'closed')),
      transfer_id ${t.text} NOT NULL,
      created_at ${t.time} NOT NULL,
      expires_at ${t.time} NOT NULL
    )${t.strict}`,
    `CREATE INDEX orders_eid ON orders (eid)`,
    `CREATE TABLE outbox (
      ${t.pos},
      id ${t.text} NOT NULL ${t.key('outbox_pk')},
      channel ${t.text} NOT NULL CHECK (channel IN ('peer', 'operator', 'device')),
      eid ${t.text} NOT NULL,
      transfer_id ${t.text},
      created_at ${t.time} NOT NULL,
      state ${t.text} NOT NULL,
      target_sm_id ${t.text},
      message ${t.json},
      operator_id ${t.text},
      notification ${t.json},
      attempts ${t.int},
      next_attempt_at ${t.time},
      last_error ${t.json},
      delivered_at ${t.time},
      kind ${t.text},
      bytes ${t.bytes},
      deliveries ${t.int},
      last_delivered_at ${t.time},
      CONSTRAINT outbox_shape CHECK (
        (channel = 'peer' AND target_sm_id IS NOT NULL AND message IS NOT NULL
          AND operator_id IS NULL AND notification IS NULL)
        OR (channel = 'operator' AND operator_id IS NOT NULL AND notification IS NOT NULL
          AND target_sm_id IS NULL AND message IS NULL)
        OR (channel = 'device' AND target_sm_id IS NULL AND message IS NULL
          AND operator_id IS NULL AND notification IS NULL)
      ),
      CONSTRAINT outbox_delivery CHECK (
        (channel = 'device' AND state IN ('pending', 'retired')
          AND kind IN ('TransferPermissionMessage', 'CancelPermission', 'ConfirmProfileSwitch')
          AND bytes IS NOT NULL AND deliveries IS NOT NULL AND ${isNull(deliveryColumns)})
        OR (channel <> 'device' AND state IN ('pending', 'delivered', 'refused')
          AND attempts IS NOT NULL AND next_attempt_at IS NOT NULL AND ${isNull(deviceColumns)})
      )
    )${t.strict}`,
    `CREATE INDEX outbox_due ON outbox (state, next_attempt_at)`,
    `CREATE INDEX outbox_eid ON outbox (eid)`,
    `CREATE INDEX outbox_transfer ON outbox (transfer_id)`,
    `CREATE TABLE audit (
      seq ${t.bigint} NOT NULL CONSTRAINT audit_pk PRIMARY KEY CHECK (seq >= 1),
      at ${t.time} NOT NULL,
      actor ${t.text} NOT NULL,
      action ${t.text} NOT NULL,
      operator_id ${t.text},
      eid ${t.text},
      transfer_id ${t.text},
      details ${t.json} NOT NULL,
      prev_hash ${t.text} NOT NULL CHECK (length(prev_hash) = 64),
      hash ${t.text} NOT NULL CONSTRAINT audit_hash_unique UNIQUE CHECK (length(hash) = 64)
    )${t.strict}`,
    `CREATE INDEX audit_operator ON audit (operator_id)`,
    `CREATE INDEX audit_eid ON audit (eid)`,
    `CREATE INDEX audit_transfer ON audit (transfer_id)`,
  ];
}

const GENESIS = `'${'0'.repeat(64)}'`;

const SQLITE_TRIGGERS = [
  `CREATE TRIGGER chips_counter_only_up BEFORE UPDATE OF counter, generation ON chips
    WHEN NEW.generation < OLD.generation OR (NEW.generation = OLD.generation AND NEW.counter < OLD.counter)
    BEGIN SELECT RAISE(ABORT, 'handover:CounterReused: a chip counter never moves down'); END`,
  `CREATE TRIGGER chips_counter_recorded BEFORE UPDATE OF counter ON chips
    WHEN NEW.generation = OLD.generation AND NEW.counter > OLD.counter AND NOT EXISTS (
      SELECT 1 FROM used_counters u
      WHERE u.eid = NEW.eid AND u.generation = NEW.generation AND u.counter = NEW.counter)
    BEGIN SELECT RAISE(ABORT, 'handover:InvalidInput: a counter is raised only by recording its use'); END`,
  `CREATE TRIGGER chips_replace_released BEFORE UPDATE OF generation ON chips
    WHEN NEW.generation <> OLD.generation AND OLD.status <> 'released'
    BEGIN SELECT RAISE(ABORT, 'handover:ChipExists: only a released chip is registered again'); END`,
  `CREATE TRIGGER transfers_fixed BEFORE UPDATE OF id, direction, eid ON transfers
    WHEN NEW.id <> OLD.id OR NEW.direction <> OLD.direction OR NEW.eid <> OLD.eid
    BEGIN SELECT RAISE(ABORT, 'handover:InvalidInput: a transfer keeps its id, direction and EID'); END`,
  `CREATE TRIGGER outbox_fixed BEFORE UPDATE OF id, channel ON outbox
    WHEN NEW.id <> OLD.id OR NEW.channel <> OLD.channel
    BEGIN SELECT RAISE(ABORT, 'handover:InvalidInput: an outbox item keeps its id and channel'); END`,
  `CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'handover:InvalidInput: the audit log is append-only'); END`,
  `CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'handover:InvalidInput: the audit log is append-only'); END`,
  `CREATE TRIGGER audit_chain BEFORE INSERT ON audit
    WHEN NEW.seq <> coalesce((SELECT max(seq) FROM audit), 0) + 1
      OR NEW.prev_hash <> coalesce((SELECT hash FROM audit WHERE seq = NEW.seq - 1), ${GENESIS})
    BEGIN SELECT RAISE(ABORT, 'handover:InvalidInput: an audit entry follows the last one (seq, prev_hash)'); END`,
];

/** plpgsql trigger functions; SET search_path FROM CURRENT pins them to the store's schema. */
const plpgsql = (name: string, body: string, declare = ''): string =>
  `CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
  ${declare ? `DECLARE ${declare}` : ''}
  BEGIN
  ${body}
  END
  $fn$`;

const POSTGRES_TRIGGERS = [
  plpgsql(
    'handover_chips_guard',
    `IF NEW.generation < OLD.generation OR (NEW.generation = OLD.generation AND NEW.counter < OLD.counter) THEN
      RAISE EXCEPTION 'handover:CounterReused: a chip counter never moves down';
    END IF;
    IF NEW.generation = OLD.generation AND NEW.counter > OLD.counter AND NOT EXISTS (
      SELECT 1 FROM used_counters u
      WHERE u.eid = NEW.eid AND u.generation = NEW.generation AND u.counter = NEW.counter) THEN
      RAISE EXCEPTION 'handover:InvalidInput: a counter is raised only by recording its use';
    END IF;
    IF NEW.generation <> OLD.generation AND OLD.status <> 'released' THEN
      RAISE EXCEPTION 'handover:ChipExists: only a released chip is registered again';
    END IF;
    RETURN NEW;`,
  ),
  `CREATE TRIGGER chips_guard BEFORE UPDATE ON chips FOR EACH ROW EXECUTE FUNCTION handover_chips_guard()`,
  plpgsql(
    'handover_transfers_fixed',
    `IF NEW.id <> OLD.id OR NEW.direction <> OLD.direction OR NEW.eid <> OLD.eid THEN
      RAISE EXCEPTION 'handover:InvalidInput: a transfer keeps its id, direction and EID';
    END IF;
    RETURN NEW;`,
  ),
  `CREATE TRIGGER transfers_fixed BEFORE UPDATE ON transfers FOR EACH ROW EXECUTE FUNCTION handover_transfers_fixed()`,
  plpgsql(
    'handover_outbox_fixed',
    `IF NEW.id <> OLD.id OR NEW.channel <> OLD.channel THEN
      RAISE EXCEPTION 'handover:InvalidInput: an outbox item keeps its id and channel';
    END IF;
    RETURN NEW;`,
  ),
  `CREATE TRIGGER outbox_fixed BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION handover_outbox_fixed()`,
  plpgsql(
    'handover_audit_append_only',
    `RAISE EXCEPTION 'handover:InvalidInput: the audit log is append-only (% refused)', TG_OP;`,
  ),
  `CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION handover_audit_append_only()`,
  `CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION handover_audit_append_only()`,
  plpgsql(
    'handover_audit_chain',
    `SELECT a.seq, a.hash INTO last_seq, last_hash FROM audit a ORDER BY a.seq DESC LIMIT 1;
    IF NEW.seq <> coalesce(last_seq, 0) + 1 OR NEW.prev_hash <> coalesce(last_hash, ${GENESIS}) THEN
      RAISE EXCEPTION 'handover:InvalidInput: an audit entry follows the last one (seq, prev_hash)';
    END IF;
    RETURN NEW;`,
    'last_seq bigint; last_hash text;',
  ),
  `CREATE TRIGGER audit_chain BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION handover_audit_chain()`,
];

function statements(dialect: SqlDialect): string[] {
  return dialect === 'sqlite'
    ? [...tables(SQLITE), ...SQLITE_TRIGGERS]
    : [...tables(POSTGRES), ...POSTGRES_TRIGGERS];
}

/**
 * 0002: the operator API's idempotency keys (http/idempotency.ts), so that a restart or another
 * replica on the same database replays a stored response instead of running a request again.
 * One row per (operator, key); `response` is the JSON body exactly as sent (text on both dialects,
 * replayed byte for byte). A row is inProgress (reserved, no response yet) or done.
 */
function idempotencyStatements(t: Ddl): string[] {
  return [
    `CREATE TABLE idempotency_keys (
      operator_id ${t.text} NOT NULL,
      key ${t.text} NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
      fingerprint ${t.text} NOT NULL CHECK (length(fingerprint) = 64),
      state ${t.text} NOT NULL CHECK (state IN ('inProgress', 'done')),
      status_code ${t.int} CHECK (status_code BETWEEN 100 AND 599),
      response ${t.text},
      created_at ${t.time} NOT NULL,
      completed_at ${t.time},
      expires_at ${t.time} NOT NULL,
      CONSTRAINT idempotency_keys_pk PRIMARY KEY (operator_id, key),
      CONSTRAINT idempotency_keys_shape CHECK (
        (state = 'inProgress' AND status_code IS NULL AND response IS NULL AND completed_at IS NULL)
        OR (state = 'done' AND status_code IS NOT NULL AND response IS NOT NULL AND completed_at IS NOT NULL)
      )
    )${t.strict}`,
    `CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)`,
  ];
}

/**
 * 0003: bulk transfer jobs (sm/bulk): a job and one item per chip, in list order. No activation
 * code is stored, only its hash. An item's transfer_id names the transfer it started.
 */
function bulkStatements(t: Ddl): string[] {
  return [
    `CREATE TABLE bulk_jobs (
      ${t.pos},
      id ${t.text} NOT NULL ${t.key('bulk_jobs_id')},
      operator_id ${t.text} NOT NULL,
      kind ${t.text} NOT NULL CHECK (kind IN ('release', 'portIn')),
      peer_sm_id ${t.text} NOT NULL,
      activation_code_hash ${t.bytes} CHECK (activation_code_hash IS NULL OR length(activation_code_hash) = 32),
      concurrency ${t.int} NOT NULL CHECK (concurrency BETWEEN 1 AND 10000),
      rate_per_second ${t.int} NOT NULL CHECK (rate_per_second BETWEEN 1 AND 100000),
      state ${t.text} NOT NULL CHECK (state IN ('running', 'paused', 'cancelled', 'completed')),
      created_at ${t.time} NOT NULL,
      updated_at ${t.time} NOT NULL
    )${t.strict}`,
    `CREATE INDEX bulk_jobs_state ON bulk_jobs (state)`,
    `CREATE TABLE bulk_items (
      job_id ${t.text} NOT NULL REFERENCES bulk_jobs (id),
      eid ${t.text} NOT NULL CHECK (length(eid) = 32),
      position ${t.int} NOT NULL CHECK (position >= 0),
      state ${t.text} NOT NULL CHECK (state IN ('pending', 'started', 'completed', 'failed', 'skipped')),
      transfer_id ${t.text},
      error_code ${t.text},
      error_message ${t.text},
      started_at ${t.time},
      updated_at ${t.time} NOT NULL,
      CONSTRAINT bulk_items_pk PRIMARY KEY (job_id, position),
      CONSTRAINT bulk_items_eid UNIQUE (job_id, eid)
    )${t.strict}`,
    `CREATE INDEX bulk_items_state ON bulk_items (job_id, state, position)`,
  ];
}

/**
 * 0004: an index for finding, among many EIDs, those with pending device messages (the batch
 * device poll, StoreTx.eidsWithDeviceWork): (channel, state, eid) answers it from the index alone,
 * where outbox_eid would visit every item a chip ever had. It also serves poll()'s own listing.
 */
const DEVICE_WORK_STATEMENTS = [`CREATE INDEX outbox_device_work ON outbox (channel, state, eid)`];

/**
 * 0005: the expiry deadline of each transfer (domain/expiry-deadline.ts) in a column of its own,
 * indexed, so that expiry asks for the transfers past it instead of reading every open one (at
 * 100,000 open transfers that read was most of an SM's work). Open transfers already stored get
 * theirs from their record.
 */
const EXPIRY_DEADLINE_STATEMENTS = (ddl: Ddl) => [
  `ALTER TABLE transfers ADD COLUMN expiry_deadline ${ddl.time}`,
  `CREATE INDEX transfers_expiry_deadline ON transfers (expiry_deadline)`,
];

async function backfillExpiryDeadlines(db: Kysely<Database>): Promise<void> {
  const rows = await db
    .selectFrom('transfers')
    .selectAll()
    .where((w) =>
      w.or([
        w.and([w('direction', '=', 'outgoing'), w('state', 'in', OPEN_OUTGOING_STATES)]),
        w.and([w('direction', '=', 'incoming'), w('state', 'in', OPEN_INCOMING_STATES)]),
      ]),
    )
    .execute();
  for (const row of rows) {
    const deadline = expiryDeadline(transferOf(row));
    if (deadline === undefined) continue;
    await db
      .updateTable('transfers')
      .set({ expiry_deadline: deadline.toISOString() })
      .where('id', '=', row.id)
      .execute();
  }
}

/**
 * 0006: the bulk runner counts, on every step, a job's items started within the last second (the
 * rate limit); without this index that count read every item of the job (100,000 in a fleet job).
 */
const BULK_STARTED_STATEMENTS = [`CREATE INDEX bulk_items_started ON bulk_items (job_id, started_at)`];

/** Every migration, by name (applied in name order). */
export function migrations(dialect: SqlDialect): Record<string, Migration> {
  const ddl = dialect === 'sqlite' ? SQLITE : POSTGRES;
  const run = (statements: readonly string[]) => async (db: Kysely<unknown>) => {
    for (const statement of statements) await sql.raw(statement).execute(db);
  };
  return {
    '0001_initial': { up: run(statements(dialect)) },
    '0002_idempotency_keys': { up: run(idempotencyStatements(ddl)) },
    '0003_bulk_transfers': { up: run(bulkStatements(ddl)) },
    '0004_outbox_device_work': { up: run(DEVICE_WORK_STATEMENTS) },
    '0005_transfer_expiry_deadline': {
      up: async (db) => {
        await run(EXPIRY_DEADLINE_STATEMENTS(ddl))(db);
        await backfillExpiryDeadlines(db);
      },
    },
    '0006_bulk_items_started': { up: run(BULK_STARTED_STATEMENTS) },
  };
}

export interface MigrateOptions {
  /** PostgreSQL: the schema holding the store and kysely's migration tables. */
  readonly schema?: string;
}

/** Brings the database to the latest schema; does nothing when it is there. Returns what ran. */
export async function migrate(
  db: Kysely<Database>,
  dialect: SqlDialect,
  o: MigrateOptions = {},
): Promise<string[]> {
  if (dialect === 'postgres') return migrateWith(db, dialect, o);
  // kysely runs SQLite migrations outside a transaction (and takes no lock): run them all in one
  // BEGIN IMMEDIATE transaction, so a crash leaves no half-made schema and another process
  // opening the same file waits for us instead of racing.
  return db.connection().execute(async (conn) => {
    await sql`BEGIN IMMEDIATE`.execute(conn);
    try {
      const ran = await migrateWith(conn, dialect, o);
      await sql`COMMIT`.execute(conn);
      return ran;
    } catch (e) {
      await sql`ROLLBACK`.execute(conn).catch(() => undefined);
      throw e;
    }
  });
}

async function migrateWith(db: Kysely<Database>, dialect: SqlDialect, o: MigrateOptions): Promise<string[]> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(dialect) };
  const migrator = new Migrator({
    db,
    provider,
    ...(o.schema !== undefined && { migrationTableSchema: o.schema }),
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  const failed = results.find((r) => r.status === 'Error');
  if (error !== undefined || failed) {
    const cause = error instanceof Error ? error : undefined;
    throw new Error(
      `store migration ${failed?.migrationName ?? ''} failed: ${cause?.message ?? String(error)}`,
      cause ? { cause } : {},
    );
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
