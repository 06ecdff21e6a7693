/**
 * PROTOCOL.md §6.3: the new SM checks a chip's TransferRequest, in the spec's order, then
 * establishes keys and answers a signed HandoverCommand. The same request posted again gets the
 * same HandoverCommand; another request with a used permissionId is refused.
 */
import {
  encodeHandoverCommand,
  encodeHandoverCommandData,
  type HandoverCommandData,
} from '../protocol/asn1/handover.ts';
import { decodeTransferRequest, type TransferRequest } from '../protocol/asn1/request.ts';
import { ecdsaVerify } from '../protocol/crypto/ecdsa.ts';
import { generateOneTimeKey } from '../protocol/crypto/one-time-key.ts';
import { CryptoError } from '../protocol/errors.ts';
import { establishKeys } from '../protocol/handover-keys.ts';
import { bytesEqual } from '../protocol/pki/certificate.ts';
import { type ChipIdentity, validateChipChain, verifyChipSignature } from './chip-identity.ts';
import type { SmContext } from './config.ts';
import { activationHashesMatch } from './domain/activation-code.ts';
import { advance, NEW_SM, type NewSmEvent } from './domain/transfer-states.ts';
import { audit, hex } from './effects.ts';
import { SmError } from './errors.ts';
import { checkBytes } from './input.ts';
import { validateSmCertificate } from './peers.ts';
import type { IncomingTransfer } from './store/types.ts';

/** KeysetVersion of the keyset a handover installs. Each handover replaces the whole keyset, so 1. */
export const KEYSET_VERSION = 1;

/** The checks that need no store, in §6.3 order. */
function checkSignedContent(ctx: SmContext, request: TransferRequest, now: Date): ChipIdentity {
  const permission = request.data.permission;
  const pd = permission.data;
  const chip = validateChipChain(ctx, request.chipCertificate, request.eumCertificate, now, pd.eid);
  verifyChipSignature(chip.publicKey, request.dataRaw, request.signature, 'TransferRequestData');
  const currentSm = validateSmCertificate(ctx, request.currentSmCertificate, pd.currentSmId, now);
  if (!ecdsaVerify(currentSm.publicKey, permission.dataRaw, permission.signature, 'plain')) {
    throw new SmError(
      'BadSignature',
      "the current SM's signature over TransferPermissionData does not verify",
      {
        message: 'TransferPermissionData',
      },
    );
  }
  if (pd.newSmId !== ctx.smId || request.data.newSmId !== ctx.smId) {
    throw new SmError(
      'WrongSm',
      `the permission and the request must both name this SM (${ctx.smId}) as new SM`,
      {
        permissionNewSmId: pd.newSmId,
        requestNewSmId: request.data.newSmId,
      },
    );
  }
  if (now.getTime() > pd.notAfter.getTime()) {
    throw new SmError('PermissionExpired', `the permission expired at ${pd.notAfter.toISOString()}`, {
      notAfter: pd.notAfter.toISOString(),
    });
  }
  return chip;
}

export async function postTransferRequest(ctx: SmContext, bytes: Uint8Array): Promise<Uint8Array> {
  const raw = Uint8Array.from(checkBytes(bytes, 'TransferRequest'));
  const request = decodeTransferRequest(raw);
  const pd = request.data.permission.data;
  const now = ctx.clock();
  // The checks that need no store first, outside the transaction; their refusal waits: the
  // exact request accepted before gets its HandoverCommand again whatever they say now (the
  // permission may have expired since). One store transaction, one lookup by permissionId.
  let chip: ChipIdentity | undefined;
  let refusal: unknown;
  try {
    chip = checkSignedContent(ctx, request, now);
  } catch (e) {
    refusal = e;
  }
  return ctx.store.transaction(async (tx) => {
    const seen = await tx.findTransferByPermissionId(pd.permissionId);
    if (seen?.direction === 'incoming' && seen.request && bytesEqual(seen.request.transferRequest, raw)) {
      return seen.request.handoverCommand;
    }
    if (!chip) throw refusal;
    if (seen) {
      throw new SmError('PermissionReused', 'this permissionId has been used before', {
        permissionId: hex(pd.permissionId),
      });
    }
    const candidate = (await tx.listTransfers({ eid: pd.eid, direction: 'incoming' })).find(
      (t): t is IncomingTransfer =>
        t.direction === 'incoming' &&
        (t.state === 'ordered' || t.state === 'asked' || t.state === 'permitted') &&
        t.peerSmId === pd.currentSmId &&
        now.getTime() <= t.expiresAt.getTime(),
    );
    const order = candidate && (await tx.getOrder(candidate.orderId));
    if (!candidate || !order || order.state !== 'open') {
      throw new SmError(
        'NoMatchingOrder',
        `no open port-in order for EID ${pd.eid} from SM ${pd.currentSmId}`,
        {
          eid: pd.eid,
          currentSmId: pd.currentSmId,
        },
      );
    }
    // An order with a code never matches without it; a permission that demands a code needs an order with one.
    if (order.activationCodeHash || pd.activationCodeHash) {
      if (
        !order.activationCodeHash ||
        !pd.activationCodeHash ||
        !activationHashesMatch(order.activationCodeHash, pd.activationCodeHash)
      ) {
        throw new SmError(
          'ActivationCodeMismatch',
          'the activation code of the order and the permission differ',
          {
            eid: pd.eid,
            orderHasCode: order.activationCodeHash !== undefined,
            permissionHasCode: pd.activationCodeHash !== undefined,
          },
        );
      }
    }
    const ot = generateOneTimeKey(chip.curve);
    let keys: ReturnType<typeof establishKeys>;
    try {
      keys = establishKeys(ot, request.data.otPkChip, {
        permissionId: pd.permissionId,
        eid: pd.eid,
        previousSmId: pd.currentSmId,
        newSmId: ctx.smId,
        keysetVersion: KEYSET_VERSION,
      });
    } catch (e) {
      if (e instanceof CryptoError) {
        throw new SmError('InvalidOneTimeKey', `otPkChip is not a point on the chip's curve (${chip.curve})`);
      }
      throw e;
    } finally {
      ot.scalar.fill(0);
    }
    const data: HandoverCommandData = {
      permissionId: pd.permissionId,
      eid: pd.eid,
      newSmId: ctx.smId,
      chipChallenge: request.data.chipChallenge,
      otPkSm: ot.publicPoint,
      keysetVersion: KEYSET_VERSION,
    };
    const dataRaw = encodeHandoverCommandData(data);
    const handoverCommand = encodeHandoverCommand(dataRaw, ctx.signer.sign(dataRaw));

    const events: NewSmEvent[] = candidate.state === 'permitted' ? [] : ['permissionIssued'];
    const established: IncomingTransfer = {
      ...candidate,
      state: advance(NEW_SM, candidate.state, ...events, 'establishKeys'),
      permissionId: pd.permissionId,
      request: {
        transferRequest: raw,
        handoverCommand,
        chipCertificate: request.chipCertificate,
        eumCertificate: request.eumCertificate,
        curve: chip.curve,
        notAfter: pd.notAfter,
        keysetVersion: KEYSET_VERSION,
        ...(pd.profileSwitch && { profileSwitch: pd.profileSwitch }),
      },
      receiptKey: keys.receiptKey,
      keyset: keys.keyset,
      updatedAt: now,
    };
    await tx.saveTransfer(established);
    await tx.saveOrder({ ...order, state: 'matched' });
    await audit(tx, ctx, {
      actor: 'device',
      action: 'keyEstablished',
      operatorId: candidate.operatorId,
      eid: pd.eid,
      transferId: candidate.id,
      details: {
        permissionId: hex(pd.permissionId),
        currentSmId: pd.currentSmId,
        curve: chip.curve,
        keysetVersion: KEYSET_VERSION,
      },
    });
    return handoverCommand;
  });
}
