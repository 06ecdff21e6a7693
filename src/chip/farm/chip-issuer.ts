/**
 * Issues many chip identities (key pair + chip certificate signed by the EUM) quickly, for a
 * chip farm. `issueChip` (protocol/pki/issue.ts) costs about 1 ms per chip on OpenSSL 3.0, most
 * of it in key encoders and decoders (SPKI export three times, PKCS#8 export, parse of the new
 * certificate); the cryptography proper (key generation + one EUM signature) is under 70 µs on
 * P-256. So the farm issues one certificate with `issueChip` as the template, then for each chip
 * copies its TBSCertificate, puts in the chip's own serial number, EID, public key and subject key
 * identifier (all fixed-size fields, found once in the template, each exactly once), and has the
 * EUM sign it. Same profile, same issuer, same extensions; `createFarm` validates chips issued
 * this way through the full chip-state validation.
 */
import { createECDH, createHash, type ECDH, type KeyObject, randomFillSync } from 'node:crypto';
import { CURVE_OID, type Curve, EC_PUBLIC_KEY_OID, OPENSSL_NAME } from '../../protocol/crypto/curves.ts';
import { privateKeyToPem } from '../../protocol/crypto/keys.ts';
import { ctx, U } from '../../protocol/der/tag.ts';
import { bitString, constructed, integer, octets, oid, sequence } from '../../protocol/der/writer.ts';
import { parseEid } from '../../protocol/eid.ts';
import { HandoverError } from '../../protocol/errors.ts';
import type { Certificate } from '../../protocol/pki/certificate.ts';
import { issueChip, signTbs } from '../../protocol/pki/issue.ts';

export interface IssuedChipIdentity {
  readonly eid: string;
  /** The chip's private key, PKCS#8 PEM (as ChipState.chipPrivateKey holds it). */
  readonly privateKeyPem: string;
  readonly certificateDer: Uint8Array;
}

/** Where a fixed-size field sits in the template TBSCertificate. */
interface Slot {
  readonly offset: number;
  readonly size: number;
}

function slotOf(tbs: Uint8Array, value: Uint8Array, name: string): Slot {
  const hay = Buffer.from(tbs.buffer, tbs.byteOffset, tbs.byteLength);
  const first = hay.indexOf(value);
  if (first < 0 || hay.indexOf(value, first + 1) >= 0) {
    throw new HandoverError('FarmTemplate', `the template chip certificate does not hold its ${name} once`);
  }
  return { offset: first, size: value.length };
}

const PEM_LINE = 64;

/** PKCS#8 with the public key inside, as OpenSSL writes it (the chip state's key format). */
export function ecPrivateKeyPem(curve: Curve, scalar: Uint8Array, point: Uint8Array): string {
  const der = sequence(
    integer(U.integer, 0),
    sequence(oid(EC_PUBLIC_KEY_OID), oid(CURVE_OID[curve])),
    octets(
      U.octetString,
      sequence(
        integer(U.integer, 1),
        octets(U.octetString, scalar),
        constructed(ctx(1, true), bitString(point)),
      ),
    ),
  );
  const b64 = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += PEM_LINE) lines.push(b64.slice(i, i + PEM_LINE));
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

export class FarmChipIssuer {
  readonly curve: Curve;
  readonly #eumKey: KeyObject;
  readonly #tbs: Uint8Array;
  readonly #serial: Slot;
  readonly #eid: Slot;
  readonly #point: Slot;
  readonly #ski: Slot;
  /** One ECDH object makes every key pair (generateKeys replaces the previous one). */
  readonly #ecdh: ECDH;
  /** Random bytes fetched in bulk: one small randomFillSync costs about as much as 1 kB of them. */
  readonly #random = new Uint8Array(16 * 256);
  #randomUsed = this.#random.length;
  /** The first identity: the template itself, issued by `issueChip`. */
  readonly first: IssuedChipIdentity;

  /** Issues the template for `firstEid` with `issueChip` and learns where its fields sit. */
  constructor(eum: { readonly certificate: Certificate; readonly privateKey: KeyObject }, firstEid: string) {
    const curve = eum.certificate.curve;
    if (!curve) throw new HandoverError('FarmTemplate', 'the EUM certificate has no P-256/brainpool key');
    this.curve = curve;
    this.#eumKey = eum.privateKey;
    this.#ecdh = createECDH(OPENSSL_NAME[curve]);
    const issued = issueChip({ issuerCert: eum.certificate, issuerKey: eum.privateKey, eid: firstEid });
    const template = issued.certificate;
    this.#tbs = Uint8Array.from(template.tbs);
    const serial = Buffer.from(template.serial, 'hex');
    if (serial.length !== 16 || (serial[0]! & 0xc0) !== 0x40) {
      throw new HandoverError('FarmTemplate', 'the template serial number is not 16 octets starting 01');
    }
    this.#serial = slotOf(this.#tbs, serial, 'serial number');
    this.#eid = slotOf(this.#tbs, Buffer.from(firstEid, 'latin1'), 'EID');
    this.#point = slotOf(this.#tbs, template.publicPoint, 'public key');
    const ski = template.extensions.subjectKeyIdentifier;
    if (!ski) throw new HandoverError('FarmTemplate', 'the template has no subject key identifier');
    this.#ski = slotOf(this.#tbs, ski, 'subject key identifier');
    if (!Buffer.from(ski).equals(createHash('sha1').update(template.publicPoint).digest())) {
      throw new HandoverError('FarmTemplate', 'the subject key identifier is not SHA-1 of the public key');
    }
    this.first = {
      eid: firstEid,
      privateKeyPem: privateKeyToPem(issued.privateKey),
      certificateDer: template.der,
    };
  }

  /** A new key pair and a chip certificate for `eid` (same EID prefix as the template). */
  issue(eid: string): IssuedChipIdentity {
    parseEid(eid);
    const ecdh = this.#ecdh;
    ecdh.generateKeys();
    const scalar = Buffer.alloc(32);
    const d = ecdh.getPrivateKey();
    d.copy(scalar, 32 - d.length);
    const point = ecdh.getPublicKey();
    if (this.#randomUsed === this.#random.length) {
      randomFillSync(this.#random);
      this.#randomUsed = 0;
    }
    const serial = this.#random.slice(this.#randomUsed, this.#randomUsed + 16);
    this.#randomUsed += 16;
    serial[0] = (serial[0]! & 0x7f) | 0x40; // positive, always 16 octets (as issue.ts does)

    const tbs = Uint8Array.from(this.#tbs);
    tbs.set(serial, this.#serial.offset);
    tbs.set(Buffer.from(eid, 'latin1'), this.#eid.offset);
    tbs.set(point, this.#point.offset);
    tbs.set(createHash('sha1').update(point).digest(), this.#ski.offset);
    return {
      eid,
      privateKeyPem: ecPrivateKeyPem(this.curve, scalar, point),
      certificateDer: signTbs(tbs, this.#eumKey),
    };
  }
}
