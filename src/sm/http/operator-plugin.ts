/**
 * Operator API (PROTOCOL.md §9): each MNO at its own SM, authenticated by a bearer token
 * (operator-auth.ts). Chips, lock policies (§8), releases (§6.1), port-in orders, approvals,
 * transfers and audit entries. Every mutating call requires an Idempotency-Key (idempotency.ts).
 */
import type { Server } from 'node:https';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { LockRequest } from '../domain/locks.ts';
import { SmError } from '../errors.ts';
import type { SubscriptionManager } from '../subscription-manager.ts';
import { MAX_TRANSFER_PAGE, type TransferQuery } from '../transfers.ts';
import { fromBase64 } from './base64.ts';
import { bulkPlugin } from './bulk-plugin.ts';
import { ApiError } from './errors.ts';
import { IDEMPOTENCY_KEY, type IdempotencyStore, requestFingerprint } from './idempotency.ts';
import type { OperatorAuthenticator } from './operator-auth.ts';
import { operatorOf, setOperator } from './request-identity.ts';
import {
  AuditEntrySchema,
  auditJson,
  Base64,
  ChipViewSchema,
  chipJson,
  DateTime,
  EidSchema,
  ID_PATTERN,
  IdSchema,
  NoBodySchema,
  queryStates,
  responses,
  TransferViewSchema,
  transferJson,
} from './schemas.ts';

export interface OperatorPluginOptions {
  readonly sm: SubscriptionManager;
  readonly auth: OperatorAuthenticator;
  readonly idempotency: IdempotencyStore;
  readonly clock: () => Date;
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const strict = { additionalProperties: false } as const;
const tags = ['operator'];
const security = [{ bearerAuth: [] }];

const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      description:
        'Required on every mutating call: the same key and body replay the first response with no second effect',
    }),
  ),
});

const Code = (description: string) => Type.String({ minLength: 1, maxLength: 256, description });

const RegisterChipBody = Type.Object(
  {
    chipCertificate: Base64('The chip certificate (DER)'),
    eumCertificate: Base64('The EUM certificate that issued it (DER)'),
  },
  strict,
);

const LockBody = Type.Object(
  {
    kind: Type.Union([
      Type.Literal('unlocked'),
      Type.Literal('lockedUntil'),
      Type.Literal('lockedUntilCode'),
    ]),
    until: Type.Optional(DateTime('lockedUntil: until when')),
    unlockCode: Type.Optional(Code('lockedUntilCode: the code; only its salted hash is kept')),
  },
  { ...strict, description: 'A lock policy (PROTOCOL.md §8)' },
);

const ProfileSwitchBody = Type.Object(
  {
    disableIccid: Type.String({ pattern: '^\\d{18,20}$' }),
    enableIccid: Type.String({ pattern: '^\\d{18,20}$' }),
    rollbackOnFailure: Type.Boolean(),
  },
  { ...strict, description: 'A profile switch applied at the commit (PROTOCOL.md §7)' },
);

const ReleaseBody = Type.Object(
  {
    eid: EidSchema,
    newSmId: Type.String({ minLength: 1, maxLength: 255 }),
    activationCode: Type.Optional(Code('Given to the subscriber; only its SHA-256 goes into the permission')),
    unlockCode: Type.Optional(Code('Needed when the chip is lockedUntilCode')),
    profileSwitch: Type.Optional(ProfileSwitchBody),
  },
  strict,
);

const PortInBody = Type.Object(
  {
    eid: EidSchema,
    currentSmId: Type.String({ minLength: 1, maxLength: 255 }),
    activationCode: Type.Optional(Code('The code the subscriber got from the current MNO')),
    unlockCode: Type.Optional(Code("The current MNO's unlock code, passed on with the ask")),
    ask: Type.Optional(
      Type.Boolean({ default: true, description: 'Ask the current SM for the permission (default true)' }),
    ),
  },
  strict,
);

const PortInResult = Type.Object({ orderId: Type.String(), transfer: TransferViewSchema });

const EidParams = Type.Object({ eid: EidSchema });
const IdParams = Type.Object({ id: IdSchema });

const TransfersQuery = Type.Object(
  {
    eid: Type.Optional(EidSchema),
    direction: Type.Optional(Type.Union([Type.Literal('outgoing'), Type.Literal('incoming')])),
    state: Type.Optional(
      Type.Union([Type.String(), Type.Array(Type.String())], {
        description: 'One state or several: comma-separated, or the parameter repeated',
      }),
    ),
    limit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_TRANSFER_PAGE,
        description: 'Page size: with it, transfers come in id order and `next` names the next page',
      }),
    ),
    after: Type.Optional(
      Type.String({ pattern: ID_PATTERN, description: 'The `next` of the previous page (needs limit)' }),
    ),
  },
  strict,
);

const AuditQuery = Type.Object(
  { eid: Type.Optional(EidSchema), transferId: Type.Optional(IdSchema) },
  strict,
);

function lockRequest(body: { kind: string; until?: string; unlockCode?: string }): LockRequest {
  const refuse = (field: string, message: string) => new SmError('InvalidInput', message, { field });
  if (body.kind !== 'lockedUntil' && body.until !== undefined)
    throw refuse('until', 'until goes only with kind lockedUntil');
  if (body.kind !== 'lockedUntilCode' && body.unlockCode !== undefined) {
    throw refuse('unlockCode', 'unlockCode goes only with kind lockedUntilCode');
  }
  switch (body.kind) {
    case 'lockedUntil':
      if (body.until === undefined) throw refuse('until', 'kind lockedUntil needs until (ISO 8601)');
      return { kind: 'lockedUntil', until: new Date(body.until) };
    case 'lockedUntilCode':
      if (body.unlockCode === undefined) throw refuse('unlockCode', 'kind lockedUntilCode needs unlockCode');
      return { kind: 'lockedUntilCode', unlockCode: body.unlockCode };
    default:
      return { kind: 'unlocked' };
  }
}

interface Reservation {
  readonly operatorId: string;
  readonly key: string;
  readonly fingerprint: string;
}

export const operatorPlugin: FastifyPluginAsyncTypebox<OperatorPluginOptions, Server> = async (app, o) => {
  const reserved = new WeakMap<object, Reservation>();

  app.addHook('onRequest', async (req) => {
    setOperator(req, o.auth.authenticate(req.headers.authorization));
    if (!MUTATING.has(req.method)) return;
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
      throw new ApiError(
        'IdempotencyKeyRequired',
        'send an Idempotency-Key header (1 to 255 printable ASCII characters, e.g. a UUID) with every change',
      );
    }
  });

  // After validation: the key is reserved for this request's fingerprint, or its response replayed.
  app.addHook('preHandler', async (req, reply) => {
    if (!MUTATING.has(req.method)) return;
    const operatorId = operatorOf(req);
    const key = req.headers['idempotency-key'] as string;
    const fingerprint = requestFingerprint(req.method, req.url.split('?')[0]!, req.body);
    const begun = await o.idempotency.begin(operatorId, key, fingerprint, o.clock());
    if (begun.kind === 'new') {
      reserved.set(req, { operatorId, key, fingerprint });
      return;
    }
    const sameRequest =
      begun.kind === 'done' ? begun.record.fingerprint === fingerprint : begun.fingerprint === fingerprint;
    if (!sameRequest) {
      throw new ApiError(
        'IdempotencyKeyReused',
        'this Idempotency-Key was used for a different request: use a new key for a new request',
      );
    }
    if (begun.kind === 'inProgress') {
      throw new ApiError(
        'IdempotencyKeyInUse',
        'a request with this Idempotency-Key is still running: retry later',
      );
    }
    reply
      .code(begun.record.statusCode)
      .header('content-type', 'application/json; charset=utf-8')
      .header('idempotent-replayed', 'true');
    return reply.send(begun.record.body);
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const r = reserved.get(req);
    if (!r) return payload;
    reserved.delete(req);
    if (reply.statusCode >= 500 || typeof payload !== 'string') {
      await o.idempotency.release(r.operatorId, r.key);
    } else {
      await o.idempotency.complete({
        ...r,
        statusCode: reply.statusCode,
        body: payload,
        createdAt: o.clock(),
      });
    }
    return payload;
  });

  const mutating = { headers: IdempotencyHeaders, tags, security };
  const reading = { tags, security };

  // Bulk transfers: a child context, so the hooks above apply to its routes too.
  await app.register(bulkPlugin, { sm: o.sm });

  app.post(
    '/v1/chips',
    {
      schema: {
        ...mutating,
        summary:
          'Register a chip (chain CI → EUM → chip, PROTOCOL.md §3); it is managed here, counter 0, unlocked',
        body: RegisterChipBody,
        response: responses(201, ChipViewSchema),
      },
    },
    async (req, reply) => {
      const view = await o.sm.registerChip(operatorOf(req), {
        chipCertificate: fromBase64(req.body.chipCertificate, 'chipCertificate'),
        eumCertificate: fromBase64(req.body.eumCertificate, 'eumCertificate'),
      });
      return reply.code(201).send(chipJson(view));
    },
  );

  app.get(
    '/v1/chips',
    {
      schema: {
        ...reading,
        summary: "The operator's chips managed here",
        response: responses(200, Type.Object({ chips: Type.Array(ChipViewSchema) })),
      },
    },
    async (req) => ({ chips: (await o.sm.listChips(operatorOf(req))).map(chipJson) }),
  );

  app.get(
    '/v1/chips/:eid',
    {
      schema: {
        ...reading,
        summary: 'One chip',
        params: EidParams,
        response: responses(200, ChipViewSchema),
      },
    },
    async (req) => chipJson(await o.sm.getChip(operatorOf(req), req.params.eid)),
  );

  app.put(
    '/v1/chips/:eid/lock',
    {
      schema: {
        ...mutating,
        summary: "Set the chip's lock policy (PROTOCOL.md §8)",
        params: EidParams,
        body: LockBody,
        response: responses(200, ChipViewSchema),
      },
    },
    async (req) => chipJson(await o.sm.setLock(operatorOf(req), req.params.eid, lockRequest(req.body))),
  );

  app.post(
    '/v1/releases',
    {
      schema: {
        ...mutating,
        summary: 'Release a chip to a new SM: the permission is issued at once (PROTOCOL.md §6.1)',
        body: ReleaseBody,
        response: responses(201, TransferViewSchema),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const view = await o.sm.requestRelease(operatorOf(req), {
        eid: b.eid,
        newSmId: b.newSmId,
        ...(b.activationCode !== undefined && { activationCode: b.activationCode }),
        ...(b.unlockCode !== undefined && { unlockCode: b.unlockCode }),
        ...(b.profileSwitch && { profileSwitch: b.profileSwitch }),
      });
      return reply.code(201).send(transferJson(view));
    },
  );

  app.post(
    '/v1/port-ins',
    {
      schema: {
        ...mutating,
        summary: 'Order a port-in from the current SM (with ask: a TransferAsk goes to it over the peer API)',
        body: PortInBody,
        response: responses(201, PortInResult),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const result = await o.sm.orderPortIn(operatorOf(req), {
        eid: b.eid,
        currentSmId: b.currentSmId,
        ...(b.activationCode !== undefined && { activationCode: b.activationCode }),
        ...(b.unlockCode !== undefined && { unlockCode: b.unlockCode }),
        ask: b.ask ?? true,
      });
      return reply.code(201).send({ orderId: result.orderId, transfer: transferJson(result.transfer) });
    },
  );

  app.post(
    '/v1/transfers/:id/approve',
    {
      schema: {
        ...mutating,
        summary: "Approve a new SM's ask: the permission is issued now",
        params: IdParams,
        body: NoBodySchema,
        response: responses(200, TransferViewSchema),
      },
    },
    async (req) => transferJson(await o.sm.approve(operatorOf(req), req.params.id)),
  );

  app.post(
    '/v1/transfers/:id/reject',
    {
      schema: {
        ...mutating,
        summary: "Reject a new SM's ask",
        params: IdParams,
        body: NoBodySchema,
        response: responses(200, TransferViewSchema),
      },
    },
    async (req) => transferJson(await o.sm.reject(operatorOf(req), req.params.id)),
  );

  app.get(
    '/v1/transfers',
    {
      schema: {
        ...reading,
        summary: "The operator's transfers: all, oldest first, or a page of `limit` in id order",
        querystring: TransfersQuery,
        response: responses(
          200,
          Type.Object({
            transfers: Type.Array(TransferViewSchema),
            next: Type.Optional(
              Type.String({ description: 'When the page is full: pass it as `after` for the next page' }),
            ),
          }),
        ),
      },
    },
    async (req) => {
      const q = req.query;
      const query: TransferQuery = {
        ...(q.eid !== undefined && { eid: q.eid }),
        ...(q.direction !== undefined && { direction: q.direction }),
        ...(q.state !== undefined && {
          states: queryStates(q.state),
        }),
        ...(q.limit !== undefined && { limit: q.limit }),
        ...(q.after !== undefined && { after: q.after }),
      };
      const transfers = await o.sm.listTransfers(operatorOf(req), query);
      const last = transfers[transfers.length - 1];
      const full = q.limit !== undefined && transfers.length === q.limit && last !== undefined;
      return { transfers: transfers.map(transferJson), ...(full && { next: last.id }) };
    },
  );

  app.get(
    '/v1/transfers/counts',
    {
      schema: {
        ...reading,
        summary: "How many of the operator's transfers are in each state (for progress over a whole fleet)",
        querystring: Type.Object(
          { direction: Type.Optional(Type.Union([Type.Literal('outgoing'), Type.Literal('incoming')])) },
          strict,
        ),
        response: responses(
          200,
          Type.Object({
            total: Type.Integer({ minimum: 0 }),
            counts: Type.Record(Type.String(), Type.Integer({ minimum: 0 }), {
              description: 'state → number of transfers (states with none are left out)',
            }),
          }),
        ),
      },
    },
    async (req) => {
      const d = req.query.direction;
      const counts = await o.sm.countTransfers(operatorOf(req), d === undefined ? {} : { direction: d });
      return { total: Object.values(counts).reduce((a, b) => a + b, 0), counts };
    },
  );

  app.get(
    '/v1/transfers/:id',
    {
      schema: {
        ...reading,
        summary: 'One transfer',
        params: IdParams,
        response: responses(200, TransferViewSchema),
      },
    },
    async (req) => transferJson(await o.sm.getTransfer(operatorOf(req), req.params.id)),
  );

  app.get(
    '/v1/audit',
    {
      schema: {
        ...reading,
        summary: "Audit entries about the operator's chips (hash-chained, append-only)",
        querystring: AuditQuery,
        response: responses(200, Type.Object({ entries: Type.Array(AuditEntrySchema) })),
      },
    },
    async (req) => {
      const q = req.query;
      const entries = await o.sm.listAudit(operatorOf(req), {
        ...(q.eid !== undefined && { eid: q.eid }),
        ...(q.transferId !== undefined && { transferId: q.transferId }),
      });
      return { entries: entries.map(auditJson) };
    },
  );
};
