/**
 * The JSON form of the peer messages (src/sm/peer-api.ts; PROTOCOL.md §9 peer API): bytes as
 * base64, everything else as is. One codec for both ends: the peer plugin decodes what the
 * HttpPeerTransport encodes, and the other way round for replies.
 */
import { type Static, Type } from 'typebox';
import { Compile } from 'typebox/compile';
import type { PeerMessage, PeerReply } from '../peer-api.ts';
import { fromBase64, toBase64 } from './base64.ts';
import { Base64, EidSchema, IdSchema } from './schemas.ts';

const strict = { additionalProperties: false } as const;

export const PeerMessageSchema = Type.Union(
  [
    Type.Object(
      {
        type: Type.Literal('TransferAsk'),
        askId: IdSchema,
        eid: EidSchema,
        activationCodeHash: Type.Optional(Base64('SHA-256 of the activation code (32 bytes)')),
        unlockCode: Type.Optional(
          Type.String({ minLength: 1, maxLength: 256, description: "The current MNO's unlock code (§8)" }),
        ),
      },
      { ...strict, description: 'A new SM asks for a permission on its MNO’s behalf (§6.1)' },
    ),
    Type.Object(
      { type: Type.Literal('Completed'), handoverResult: Base64('The chip-signed HandoverResult (DER)') },
      { ...strict, description: 'The new SM relays the chip’s HandoverResult (§6.5)' },
    ),
    Type.Object(
      {
        type: Type.Literal('CancelOutcome'),
        permissionId: Base64('The permissionId (16 bytes)'),
        askId: Type.Optional(IdSchema),
        chipResult: Base64('The chip-signed ChipResult or HandoverResult (DER)'),
      },
      { ...strict, description: 'The current SM passes on how a cancellation ended (§6.6)' },
    ),
    Type.Object(
      {
        type: Type.Literal('AskOutcome'),
        askId: IdSchema,
        eid: EidSchema,
        outcome: Type.Union([Type.Literal('rejected'), Type.Literal('expired')]),
      },
      { ...strict, description: 'The current SM ended an ask without a permission' },
    ),
  ],
  { description: 'A PeerMessage; DER and hashes as base64' },
);
export type PeerMessageJson = Static<typeof PeerMessageSchema>;

export const PeerReplySchema = Type.Union([
  Type.Object(
    {
      type: Type.Literal('TransferAskAccepted'),
      transferId: Type.String({ minLength: 1, maxLength: 128 }),
      state: Type.Union([Type.Literal('permitted'), Type.Literal('awaitingApproval')]),
    },
    strict,
  ),
  Type.Object({ type: Type.Literal('Ack') }, strict),
]);
export type PeerReplyJson = Static<typeof PeerReplySchema>;

export function encodePeerMessage(m: PeerMessage): PeerMessageJson {
  switch (m.type) {
    case 'TransferAsk':
      return {
        type: m.type,
        askId: m.askId,
        eid: m.eid,
        ...(m.activationCodeHash && { activationCodeHash: toBase64(m.activationCodeHash) }),
        ...(m.unlockCode !== undefined && { unlockCode: m.unlockCode }),
      };
    case 'Completed':
      return { type: m.type, handoverResult: toBase64(m.handoverResult) };
    case 'CancelOutcome':
      return {
        type: m.type,
        permissionId: toBase64(m.permissionId),
        ...(m.askId !== undefined && { askId: m.askId }),
        chipResult: toBase64(m.chipResult),
      };
    case 'AskOutcome':
      return { type: m.type, askId: m.askId, eid: m.eid, outcome: m.outcome };
  }
}

/** From JSON already checked against PeerMessageSchema; MalformedBase64 for bad bytes. */
export function decodePeerMessage(j: PeerMessageJson): PeerMessage {
  switch (j.type) {
    case 'TransferAsk':
      return {
        type: j.type,
        askId: j.askId,
        eid: j.eid,
        ...(j.activationCodeHash !== undefined && {
          activationCodeHash: fromBase64(j.activationCodeHash, 'activationCodeHash'),
        }),
        ...(j.unlockCode !== undefined && { unlockCode: j.unlockCode }),
      };
    case 'Completed':
      return { type: j.type, handoverResult: fromBase64(j.handoverResult, 'handoverResult') };
    case 'CancelOutcome':
      return {
        type: j.type,
        permissionId: fromBase64(j.permissionId, 'permissionId'),
        ...(j.askId !== undefined && { askId: j.askId }),
        chipResult: fromBase64(j.chipResult, 'chipResult'),
      };
    case 'AskOutcome':
      return { type: j.type, askId: j.askId, eid: j.eid, outcome: j.outcome };
  }
}

export const encodePeerReply = (r: PeerReply): PeerReplyJson => ({ ...r });

const checkReply = Compile(PeerReplySchema);

/** A peer's reply as received; undefined when it is not a PeerReply. */
export function decodePeerReply(value: unknown): PeerReply | undefined {
  return checkReply.Check(value) ? (value as PeerReplyJson) : undefined;
}
