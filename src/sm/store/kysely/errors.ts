/**
 * Database errors as the store's typed refusals. The repositories check every constraint in code
 * first (so the refusal carries the same details as the memory store's, and a PostgreSQL
 * transaction is not aborted by a failed statement); the database's own constraints, named in
 * migrations.ts, are the guarantee when two writers race. Trigger messages carry the code as
 * `handover:<Code>: ...`.
 */
import { type StoreConstraint, StoreConstraintError } from '../types.ts';

const CODES: readonly StoreConstraint[] = [
  'ChipExists',
  'ChipNotManaged',
  'CounterReused',
  'PermissionReused',
  'TransferPending',
  'OrderPending',
  'UnknownTransfer',
  'InvalidInput',
];

/** What the failing write was about, to pick the code and details. */
export interface WriteHint {
  readonly eid?: string;
  readonly direction?: 'outgoing' | 'incoming';
  readonly id?: string;
}

interface DbErrorFields {
  readonly code: string;
  readonly message: string;
  readonly constraint: string;
}

function fieldsOf(e: unknown): DbErrorFields | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e) || typeof e.code !== 'string') return undefined;
  const message = 'message' in e && typeof e.message === 'string' ? e.message : '';
  const constraint = 'constraint' in e && typeof e.constraint === 'string' ? e.constraint : '';
  return { code: e.code, message, constraint };
}

/** PostgreSQL serialization failure or deadlock: the transaction may simply be run again. */
export function isRetryable(e: unknown): boolean {
  const f = fieldsOf(e);
  return f !== undefined && (f.code === '40001' || f.code === '40P01');
}

function pending(hint: WriteHint): StoreConstraintError {
  const details = { ...(hint.eid !== undefined && { eid: hint.eid }) };
  return hint.direction === 'incoming'
    ? new StoreConstraintError('OrderPending', `chip ${hint.eid} already has a port-in in progress`, details)
    : new StoreConstraintError(
        'TransferPending',
        `chip ${hint.eid} already has a transfer in progress`,
        details,
      );
}

/** Which unique key failed: a PostgreSQL constraint name, or SQLite's "table.column, ..." list. */
function uniqueViolation(key: string, hint: WriteHint): StoreConstraintError {
  if (key === 'transfers_permission_id_unique' || key === 'transfers.permission_id') {
    return new StoreConstraintError('PermissionReused', 'this permissionId has been seen before');
  }
  if (key === 'transfers_one_open' || key === 'transfers.eid, transfers.direction') return pending(hint);
  if (key === 'used_counters_pk' || key.startsWith('used_counters.')) {
    return new StoreConstraintError('CounterReused', 'this counter value toward the chip was used before', {
      ...(hint.eid !== undefined && { eid: hint.eid }),
    });
  }
  if (key === 'chips_pk' || key === 'chips.eid') {
    return new StoreConstraintError('ChipExists', `chip ${hint.eid} is already managed here`, {
      ...(hint.eid !== undefined && { eid: hint.eid }),
    });
  }
  return new StoreConstraintError('InvalidInput', `${hint.id ?? 'the record'} exists (${key})`);
}

/** The typed refusal for a database error, or undefined when it is not a refusal (rethrow it). */
export function storeErrorOf(e: unknown, hint: WriteHint = {}): StoreConstraintError | undefined {
  if (e instanceof StoreConstraintError) return e;
  const f = fieldsOf(e);
  if (!f) return undefined;
  const tagged = /handover:(\w+): ?(.*)/s.exec(f.message);
  if (tagged?.[1] !== undefined && (CODES as readonly string[]).includes(tagged[1])) {
    return new StoreConstraintError(tagged[1] as StoreConstraint, tagged[2] ?? f.message, {
      ...(hint.eid !== undefined && { eid: hint.eid }),
    });
  }
  // PostgreSQL SQLSTATEs.
  if (f.code === '23505') return uniqueViolation(f.constraint, hint);
  if (f.code === '23503') {
    return new StoreConstraintError('ChipNotManaged', `no chip ${hint.eid}`, {
      ...(hint.eid !== undefined && { eid: hint.eid }),
    });
  }
  if (f.code.startsWith('23') || f.code.startsWith('22')) {
    return new StoreConstraintError('InvalidInput', `the store refused the record: ${f.message}`);
  }
  // SQLite result codes.
  if (f.code === 'SQLITE_CONSTRAINT_UNIQUE' || f.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return uniqueViolation(f.message.replace(/^UNIQUE constraint failed: /, ''), hint);
  }
  if (f.code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
    return new StoreConstraintError('ChipNotManaged', `no chip ${hint.eid}`, {
      ...(hint.eid !== undefined && { eid: hint.eid }),
    });
  }
  if (f.code.startsWith('SQLITE_CONSTRAINT') || f.code === 'SQLITE_MISMATCH' || f.code === 'SQLITE_TOOBIG') {
    return new StoreConstraintError('InvalidInput', `the store refused the record: ${f.message}`);
  }
  return undefined;
}
