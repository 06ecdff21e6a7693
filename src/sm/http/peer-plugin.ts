/**
 * Peer API (PROTOCOL.md §9): SM ↔ SM over mutual TLS. The caller's SM id is the CN of its client
 * certificate, checked in onRequest before any body is read or any handler runs (peer-auth.ts).
 * One endpoint takes every PeerMessage (ask, completion, cancellation outcome, ask outcome); one
 * reads the status of a transfer the caller is part of. Messages are idempotent by content: the
 * same message again gets the same reply and no second effect (§6.6).
 */
import type { Server } from 'node:https';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Certificate } from '../../protocol/pki/certificate.ts';
import type { SmStore } from '../store/types.ts';
import type { SubscriptionManager } from '../subscription-manager.ts';
import { authenticatePeer } from './peer-auth.ts';
import { decodePeerMessage, encodePeerReply, PeerMessageSchema, PeerReplySchema } from './peer-codec.ts';
import { peerTransferStatus } from './peer-transfer-status.ts';
import { peerOf, setPeer } from './request-identity.ts';
import { DateTime, EidSchema, IdSchema, responses } from './schemas.ts';

export interface PeerPluginOptions {
  readonly sm: SubscriptionManager;
  readonly store: SmStore;
  readonly trustedCis: readonly Certificate[];
  readonly peers: ReadonlySet<string>;
  readonly clock: () => Date;
}

const tags = ['peer'];

const PeerTransferStatusSchema = Type.Object({
  transferId: Type.String(),
  role: Type.Union([Type.Literal('currentSm'), Type.Literal('newSm')], {
    description: "This SM's role in the transfer",
  }),
  eid: EidSchema,
  state: Type.String(),
  permissionId: Type.Optional(Type.String({ description: 'Hex' })),
  peerTransferId: Type.Optional(Type.String({ description: "The caller's own id for the transfer" })),
  endReason: Type.Optional(Type.String()),
  updatedAt: DateTime(),
});

export const peerPlugin: FastifyPluginAsyncTypebox<PeerPluginOptions, Server> = async (app, o) => {
  app.addHook('onRequest', async (req) => {
    setPeer(req, authenticatePeer(req.raw.socket, o));
  });

  app.post(
    '/peer/v1/messages',
    {
      schema: {
        tags,
        summary: 'Deliver one peer message; the caller is the SM named by the client certificate',
        body: PeerMessageSchema,
        response: responses(200, PeerReplySchema),
      },
    },
    async (req) => encodePeerReply(await o.sm.handlePeerMessage(peerOf(req), decodePeerMessage(req.body))),
  );

  app.get(
    '/peer/v1/transfers/:id',
    {
      schema: {
        tags,
        summary: "Status of one of this SM's transfers (by this SM's transfer id) that involves the caller",
        params: Type.Object({ id: IdSchema }),
        response: responses(200, PeerTransferStatusSchema),
      },
    },
    async (req) => {
      const s = await peerTransferStatus(o.store, peerOf(req), req.params.id);
      return { ...s, updatedAt: s.updatedAt.toISOString() };
    },
  );
};
