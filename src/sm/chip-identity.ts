/** A chip's identity from its certificate chain CI → EUM → chip (PROTOCOL.md §3), as an SM sees it. */
import type { KeyObject } from 'node:crypto';
import type { Curve } from '../protocol/crypto/curves.ts';
import { ecdsaVerify } from '../protocol/crypto/ecdsa.ts';
import { publicKeyFromSpki } from '../protocol/crypto/keys.ts';
import { CertificateError, parseCertificateCached } from '../protocol/pki/certificate.ts';
import { validateChain } from '../protocol/pki/validate.ts';
import type { SmContext } from './config.ts';
import { SmError } from './errors.ts';

export interface ChipIdentity {
  readonly eid: string;
  readonly curve: Curve;
  readonly publicKey: KeyObject;
}

/** Validates the chain (dates included: SMs have a clock) and, when given, that it is `expectedEid`'s. */
export function validateChipChain(
  ctx: SmContext,
  chipCertificate: Uint8Array,
  eumCertificate: Uint8Array,
  at: Date,
  expectedEid?: string,
): ChipIdentity {
  let identity: ChipIdentity;
  try {
    const chain = validateChain(
      [parseCertificateCached(chipCertificate), parseCertificateCached(eumCertificate)],
      {
        trusted: ctx.trustedCis,
        at,
        expectRole: 'chip',
      },
    );
    identity = { eid: chain.eid!, curve: chain.curve, publicKey: chain.publicKey };
  } catch (e) {
    if (e instanceof CertificateError) {
      throw new SmError('ChipCertificateInvalid', `the chip's certificate chain is not valid: ${e.message}`, {
        reason: e.reason,
      });
    }
    throw e;
  }
  if (expectedEid !== undefined && identity.eid !== expectedEid) {
    throw new SmError(
      'EidMismatch',
      `the chip certificate is for EID ${identity.eid}, the message names ${expectedEid}`,
      {
        certificateEid: identity.eid,
        eid: expectedEid,
      },
    );
  }
  return identity;
}

/** The public key of a chip certificate this SM validated when it stored it. */
export function storedChipKey(chipCertificate: Uint8Array): KeyObject {
  return publicKeyFromSpki(parseCertificateCached(chipCertificate).spki);
}

/** Verifies a chip signature over `dataRaw` (bytes as received); BadSignature otherwise. */
export function verifyChipSignature(
  key: KeyObject,
  dataRaw: Uint8Array,
  signature: Uint8Array,
  what: string,
): void {
  if (!ecdsaVerify(key, dataRaw, signature, 'plain')) {
    throw new SmError('BadSignature', `the chip's signature over ${what} does not verify`, { message: what });
  }
}
