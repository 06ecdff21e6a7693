/**
 * Operator API for bulk transfers (sm/bulk/jobs.ts): create a job over a list of EIDs, read its
 * status and report, page through its items, pause, resume and cancel it. Registered inside the
 * operator plugin, so its authentication and Idempotency-Key hooks apply here too.
 */
import type { Server } from 'node:https';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from 'typebox';
import type { BulkJobStatus } from '../bulk/jobs.ts';
import { BULK_LIMITS } from '../bulk/limits.ts';
import { SmError } from '../errors.ts';
import { checkStates } from '../input.ts';
import { BULK_ITEM_STATES, type BulkItemRecord, type BulkItemState } from '../store/types.ts';
import type { SubscriptionManager } from '../subscription-manager.ts';
import { operatorOf } from './request-identity.ts';
import { DateTime, IdSchema, NoBodySchema, queryStates, responses } from './schemas.ts';

export interface BulkPluginOptions {
  readonly sm: SubscriptionManager;
}

/** A job's body: 200,000 EIDs as JSON are about 7 MB. */
export const BULK_BODY_LIMIT = 8 * 1024 * 1024;

const strict = { additionalProperties: false } as const;
const tags = ['operator'];
const security = [{ bearerAuth: [] }];
const IdempotencyHeaders = Type.Object({ 'idempotency-key': Type.Optional(Type.String()) });

const ItemState = Type.Union([
  Type.Literal('pending'),
  Type.Literal('started'),
  Type.Literal('completed'),
  Type.Literal('failed'),
  Type.Literal('skipped'),
]);

const CreateBody = Type.Object(
  {
    kind: Type.Union([Type.Literal('release'), Type.Literal('portIn')]),
    eids: Type.Array(Type.String({ maxLength: 64 }), {
      minItems: 1,
      maxItems: BULK_LIMITS.eids,
      description: 'The chips, in the order they start (each checked: 32 digits, mod-97)',
    }),
    newSmId: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'release: the new SM' })),
    currentSmId: Type.Optional(
      Type.String({ minLength: 1, maxLength: 255, description: 'portIn: the current SM' }),
    ),
    concurrency: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: BULK_LIMITS.concurrency,
        description: 'Transfers in flight at most (default 10)',
      }),
    ),
    ratePerSecond: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: BULK_LIMITS.ratePerSecond,
        description: 'Transfers started per second at most (default 10)',
      }),
    ),
    activationCode: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description:
          'One activation code for every transfer of the job (release: in each permission; portIn: in each order); only its SHA-256 is kept',
      }),
    ),
  },
  strict,
);

const Counts = Type.Object({
  pending: Type.Integer(),
  started: Type.Integer(),
  completed: Type.Integer(),
  failed: Type.Integer(),
  skipped: Type.Integer(),
});

const JobSchema = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  peerSmId: Type.String(),
  concurrency: Type.Integer(),
  ratePerSecond: Type.Integer(),
  activationCode: Type.Boolean({ description: 'Whether the job binds an activation code (never the code)' }),
  state: Type.String({ description: 'running, paused, cancelled or completed' }),
  createdAt: DateTime(),
  updatedAt: DateTime(),
});

const ReportSchema = Type.Object({
  total: Type.Integer(),
  counts: Counts,
  finished: Type.Boolean({
    description: 'Completed, or cancelled with nothing in flight: the counts are final',
  }),
  failures: Type.Array(
    Type.Object({
      position: Type.Integer(),
      eid: Type.String(),
      code: Type.String(),
      message: Type.String(),
      transferId: Type.Optional(Type.String()),
    }),
  ),
  failuresTruncated: Type.Boolean(),
});

const StatusSchema = Type.Object({ job: JobSchema, counts: Counts, report: ReportSchema });

const ItemSchema = Type.Object({
  position: Type.Integer(),
  eid: Type.String(),
  state: ItemState,
  transferId: Type.Optional(Type.String()),
  errorCode: Type.Optional(Type.String()),
  errorMessage: Type.Optional(Type.String()),
  startedAt: Type.Optional(DateTime()),
  updatedAt: DateTime(),
});

const ItemsQuery = Type.Object(
  {
    state: Type.Optional(
      Type.Union([Type.String(), Type.Array(Type.String())], {
        description: 'One item state or several: comma-separated, or the parameter repeated',
      }),
    ),
    after: Type.Optional(Type.Integer({ minimum: -1, description: 'Only items after this position' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 })),
  },
  strict,
);

const IdParams = Type.Object({ id: IdSchema });

export function bulkStatusJson(s: BulkJobStatus): Static<typeof StatusSchema> {
  const j = s.job;
  return {
    job: {
      id: j.id,
      kind: j.kind,
      peerSmId: j.peerSmId,
      concurrency: j.concurrency,
      ratePerSecond: j.ratePerSecond,
      activationCode: j.activationCodeHash !== undefined,
      state: j.state,
      createdAt: j.createdAt.toISOString(),
      updatedAt: j.updatedAt.toISOString(),
    },
    counts: s.report.counts,
    report: {
      ...s.report,
      failures: s.report.failures.map((f) => ({ ...f })),
    },
  };
}

function itemJson(i: BulkItemRecord): Static<typeof ItemSchema> {
  return {
    position: i.position,
    eid: i.eid,
    state: i.state,
    ...(i.transferId !== undefined && { transferId: i.transferId }),
    ...(i.errorCode !== undefined && { errorCode: i.errorCode }),
    ...(i.errorMessage !== undefined && { errorMessage: i.errorMessage }),
    ...(i.startedAt !== undefined && { startedAt: i.startedAt.toISOString() }),
    updatedAt: i.updatedAt.toISOString(),
  };
}

const ITEM_STATES: ReadonlySet<string> = new Set(BULK_ITEM_STATES);

function itemStates(state: string | string[] | undefined): BulkItemState[] | undefined {
  return state === undefined
    ? undefined
    : checkStates<BulkItemState>(queryStates(state), ITEM_STATES, 'item');
}

export const bulkPlugin: FastifyPluginAsyncTypebox<BulkPluginOptions, Server> = async (app, o) => {
  const mutating = { headers: IdempotencyHeaders, tags, security };
  const reading = { tags, security };

  app.post(
    '/v1/bulk-transfers',
    {
      bodyLimit: BULK_BODY_LIMIT,
      schema: {
        ...mutating,
        summary:
          'Start a bulk transfer job: release (newSmId) or port-in (currentSmId) each listed chip, bounded by concurrency and ratePerSecond',
        body: CreateBody,
        response: responses(201, StatusSchema),
      },
    },
    async (req, reply) => {
      const b = req.body;
      const peer = b.kind === 'release' ? b.newSmId : b.currentSmId;
      const other = b.kind === 'release' ? b.currentSmId : b.newSmId;
      const field = b.kind === 'release' ? 'newSmId' : 'currentSmId';
      if (peer === undefined || other !== undefined) {
        throw new SmError('InvalidInput', `a ${b.kind} job names ${field} (and only it)`, { field });
      }
      const status = await o.sm.createBulkJob(operatorOf(req), {
        kind: b.kind,
        eids: b.eids,
        peerSmId: peer,
        ...(b.concurrency !== undefined && { concurrency: b.concurrency }),
        ...(b.ratePerSecond !== undefined && { ratePerSecond: b.ratePerSecond }),
        ...(b.activationCode !== undefined && { activationCode: b.activationCode }),
      });
      return reply.code(201).send(bulkStatusJson(status));
    },
  );

  app.get(
    '/v1/bulk-transfers/:id',
    {
      schema: {
        ...reading,
        summary: 'A bulk job: its state, counts per item state, and the report (failures with reasons)',
        params: IdParams,
        response: responses(200, StatusSchema),
      },
    },
    async (req) => bulkStatusJson(await o.sm.getBulkJob(operatorOf(req), req.params.id)),
  );

  app.get(
    '/v1/bulk-transfers/:id/items',
    {
      schema: {
        ...reading,
        summary: "A bulk job's items in list order (page with after = the last position seen)",
        params: IdParams,
        querystring: ItemsQuery,
        response: responses(200, Type.Object({ items: Type.Array(ItemSchema) })),
      },
    },
    async (req) => {
      const q = req.query;
      const states = itemStates(q.state);
      const items = await o.sm.listBulkItems(operatorOf(req), req.params.id, {
        ...(states !== undefined && { states }),
        ...(q.after !== undefined && { afterPosition: q.after }),
        ...(q.limit !== undefined && { limit: q.limit }),
      });
      return { items: items.map(itemJson) };
    },
  );

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post(
      `/v1/bulk-transfers/:id/${action}`,
      {
        schema: {
          ...mutating,
          summary:
            action === 'cancel'
              ? 'Cancel a bulk job: pending items are skipped; started transfers run to their end'
              : `${action[0]?.toUpperCase()}${action.slice(1)} a bulk job`,
          params: IdParams,
          body: NoBodySchema,
          response: responses(200, StatusSchema),
        },
      },
      async (req) => bulkStatusJson(await o.sm.controlBulkJob(operatorOf(req), req.params.id, action)),
    );
  }
};
