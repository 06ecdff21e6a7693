/** ASN.1 tag classes and a compact tag value, as used by the DER reader and writer. */
export const Class = { universal: 0, application: 1, context: 2, private: 3 } as const;
export type TagClass = (typeof Class)[keyof typeof Class];

export interface Tag {
  readonly cls: TagClass;
  readonly constructed: boolean;
  readonly num: number;
}

export const tag = (cls: TagClass, constructed: boolean, num: number): Tag => ({ cls, constructed, num });
export const ctx = (num: number, constructed = false): Tag => tag(Class.context, constructed, num);
export const priv = (num: number): Tag => tag(Class.private, true, num);

export const U = {
  boolean: tag(Class.universal, false, 1),
  integer: tag(Class.universal, false, 2),
  bitString: tag(Class.universal, false, 3),
  octetString: tag(Class.universal, false, 4),
  null: tag(Class.universal, false, 5),
  oid: tag(Class.universal, false, 6),
  enumerated: tag(Class.universal, false, 10),
  utf8String: tag(Class.universal, false, 12),
  printableString: tag(Class.universal, false, 19),
  ia5String: tag(Class.universal, false, 22),
  utcTime: tag(Class.universal, false, 23),
  generalizedTime: tag(Class.universal, false, 24),
  sequence: tag(Class.universal, true, 16),
  set: tag(Class.universal, true, 17),
} as const;

/** [APPLICATION 55], tag bytes 5F 37: plain r||s signatures in protocol messages. */
export const SIGNATURE_TAG = tag(Class.application, false, 55);

export function sameTag(a: Tag, b: Tag): boolean {
  return a.cls === b.cls && a.constructed === b.constructed && a.num === b.num;
}

/** Identifier octets of a tag (low-tag form below 31, high-tag form above). */
export function tagBytes(t: Tag): Uint8Array {
  const first = (t.cls << 6) | (t.constructed ? 0x20 : 0);
  if (t.num < 31) return Uint8Array.of(first | t.num);
  const groups: number[] = [];
  let n = t.num;
  groups.unshift(n & 0x7f);
  n >>>= 7;
  while (n > 0) {
    groups.unshift((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  return Uint8Array.of(first | 0x1f, ...groups);
}

export function tagName(t: Tag): string {
  return Buffer.from(tagBytes(t)).toString('hex').toUpperCase();
}
