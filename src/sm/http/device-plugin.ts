/**
 * Device API (PROTOCOL.md §9): server TLS only, no credentials, because every payload is signed
 * end to end (by the SM or by the chip) and checked by whoever receives it. The device agent polls
 * for messages for an EID and posts the chip's answers. Each post is idempotent by content (§6.6).
 */
import type { Server } from 'node:https';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MAX_POLL_BATCH } from '../poll.ts';
import type { SubscriptionManager } from '../subscription-manager.ts';
import { fromBase64, toBase64 } from './base64.ts';
import { Base64, EidSchema, responses } from './schemas.ts';

export interface DevicePluginOptions {
  readonly sm: SubscriptionManager;
}

const tags = ['device'];
const MessageBody = (description: string) =>
  Type.Object({ message: Base64(description) }, { additionalProperties: false });

const ChipResultOutcomeSchema = Type.Object({
  effect: Type.Union(
    [
      Type.Literal('completed'),
      Type.Literal('cancelled'),
      Type.Literal('confirmed'),
      Type.Literal('rolledBack'),
      Type.Literal('recorded'),
      Type.Literal('unchanged'),
    ],
    { description: 'What the result did here' },
  ),
  outcome: Type.String({ description: "The chip's outcome code" }),
  transferId: Type.Optional(Type.String()),
  state: Type.Optional(Type.String()),
});

export const devicePlugin: FastifyPluginAsyncTypebox<DevicePluginOptions, Server> = async (app, o) => {
  app.get(
    '/device/v1/chips/:eid/messages',
    {
      schema: {
        tags,
        summary:
          'Signed messages waiting for the chip (TransferPermissionMessage, CancelPermission, ConfirmProfileSwitch)',
        params: Type.Object({ eid: EidSchema }),
        response: responses(
          200,
          Type.Object({ messages: Type.Array(Type.String({ description: 'DER, base64' })) }),
        ),
      },
    },
    async (req) => ({ messages: (await o.sm.poll(req.params.eid)).map(toBase64) }),
  );

  app.post(
    '/device/v1/poll',
    {
      schema: {
        tags,
        summary: `The messages waiting for many chips at once (at most ${MAX_POLL_BATCH} EIDs); only chips with messages are listed`,
        body: Type.Object(
          { eids: Type.Array(EidSchema, { minItems: 1, maxItems: MAX_POLL_BATCH }) },
          { additionalProperties: false },
        ),
        response: responses(
          200,
          Type.Object({
            messages: Type.Record(EidSchema, Type.Array(Type.String({ description: 'DER, base64' })), {
              description: 'EID → its messages, oldest first',
            }),
          }),
        ),
      },
    },
    async (req) => {
      const polled = await o.sm.pollMany(req.body.eids);
      const messages: Record<string, string[]> = {};
      for (const [eid, list] of polled) messages[eid] = list.map(toBase64);
      return { messages };
    },
  );

  app.post(
    '/device/v1/transfer-requests',
    {
      schema: {
        tags,
        summary: "The chip's TransferRequest (§6.3); answers the SM-signed HandoverCommand",
        body: MessageBody('TransferRequest (DER)'),
        response: responses(200, Type.Object({ message: Base64('HandoverCommand (DER)') })),
      },
    },
    async (req) => ({
      message: toBase64(await o.sm.postTransferRequest(fromBase64(req.body.message, 'message'))),
    }),
  );

  app.post(
    '/device/v1/handover-results',
    {
      schema: {
        tags,
        summary: "The chip's HandoverResult (§6.5): completes the transfer here",
        body: MessageBody('HandoverResult (DER)'),
        response: responses(200, Type.Object({ transferId: Type.String(), state: Type.String() })),
      },
    },
    async (req) => {
      const r = await o.sm.postHandoverResult(fromBase64(req.body.message, 'message'));
      return { transferId: r.transferId, state: r.state };
    },
  );

  app.post(
    '/device/v1/chip-results',
    {
      schema: {
        tags,
        summary: 'A chip-signed ChipResult (§6.6 cancellation outcome, §7 profile switch, or a refusal)',
        body: MessageBody('ChipResult (DER)'),
        response: responses(200, ChipResultOutcomeSchema),
      },
    },
    async (req) => {
      const r = await o.sm.postChipResult(fromBase64(req.body.message, 'message'));
      return {
        effect: r.effect,
        outcome: r.outcome,
        ...(r.transferId !== undefined && { transferId: r.transferId }),
        ...(r.state !== undefined && { state: r.state }),
      };
    },
  );
};
