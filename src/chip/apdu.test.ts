/**
 * ISO 7816-4 framing (PROTOCOL.md §5): SELECT, STORE DATA chaining, 61xx / GET RESPONSE, and the
 * status words for everything else. A property test runs random command and answer sizes
 * through the card and the device-side client.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { smOf, transferPermissionMessage } from '../../test/support/sm-messages.ts';
import { sendCommand, storeDataApdus } from '../device/apdu-client.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../protocol/asn1/info.ts';
import { decodeTransferRequest } from '../protocol/asn1/request.ts';
import { ChipCard, ISD_R_AID } from './apdu.ts';
import { type CommandProcessor, UnknownCommand } from './processor.ts';
import { createTestChip, createTestPki, testEid } from './testing.ts';

const pki = createTestPki('p256');
after(() => pki.remove());

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const swOf = (r: Uint8Array) =>
  Buffer.from(r.subarray(r.length - 2))
    .toString('hex')
    .toUpperCase();
const dataOf = (r: Uint8Array) => r.subarray(0, r.length - 2);

/** Records what it receives and answers with a fixed response. */
class FakeProcessor implements CommandProcessor {
  received: Uint8Array[] = [];
  constructor(public answer: Uint8Array) {}
  process(command: Uint8Array): Uint8Array {
    this.received.push(Uint8Array.from(command));
    return this.answer;
  }
}

const select = Uint8Array.of(0x00, 0xa4, 0x04, 0x00, 0x10, ...ISD_R_AID);

describe('SELECT and status words', () => {
  const card = new ChipCard(new FakeProcessor(Uint8Array.of(1)));
  test('SELECT ISD-R → 9000; another AID → 6A82; bad P1 → 6A86', () => {
    assert.equal(swOf(card.transmit(select)), '9000');
    assert.equal(swOf(card.transmit(hex('00A4040010A0000005591010FFFFFFFF8900000200'))), '6A82');
    assert.equal(swOf(card.transmit(hex('00A4000010A0000005591010FFFFFFFF8900000100'))), '6A86');
    assert.equal(swOf(card.transmit(Uint8Array.of(...select, 0x00))), '9000', 'with Le');
  });
  test('bad CLA → 6E00; unknown INS → 6D00; wrong length → 6700', () => {
    assert.equal(swOf(card.transmit(hex('A0A4040010A0000005591010FFFFFFFF8900000100'))), '6E00');
    assert.equal(swOf(card.transmit(hex('80A4040010A0000005591010FFFFFFFF8900000100'))), '6E00');
    assert.equal(swOf(card.transmit(hex('00E2910001EE'))), '6E00', 'STORE DATA needs CLA 80');
    assert.equal(swOf(card.transmit(hex('80CA000000'))), '6D00');
    assert.equal(swOf(card.transmit(hex('00B0000000'))), '6D00');
    assert.equal(swOf(card.transmit(hex('80E291'))), '6700', 'shorter than a header');
    assert.equal(swOf(card.transmit(hex('80E2910003EE00'))), '6700', 'Lc larger than the data');
    assert.equal(swOf(card.transmit(hex('80E2910001EE0000'))), '6700', 'data longer than Lc + Le');
    assert.equal(swOf(card.transmit(hex('80E2910000'))), '6700', 'STORE DATA without data');
    assert.equal(swOf(card.transmit(hex('80E29100000001EE'))), '6700', 'extended length');
    assert.equal(swOf(card.transmit(hex('00A4040000'))), '6700', 'SELECT without an AID');
  });
  test('STORE DATA with P1 other than 11 / 91 → 6A86', () => {
    assert.equal(swOf(card.transmit(hex('80E2010001EE'))), '6A86');
  });
  test('GET RESPONSE with nothing to fetch → 6985; bad P1P2 → 6A86; without Le → 6700', () => {
    assert.equal(swOf(card.transmit(hex('00C0000000'))), '6985');
    assert.equal(swOf(card.transmit(hex('00C0010000'))), '6A86');
    assert.equal(swOf(card.transmit(hex('00C00000'))), '6700');
  });
});

describe('STORE DATA and the real chip', () => {
  test('bytes that are not one command TLV → 6A80', () => {
    const chip = createTestChip(pki);
    for (const data of ['3000', 'E2', 'E20500', 'EE0000', 'EF00']) {
      const apdu = hex(`80E29100${(data.length / 2).toString(16).padStart(2, '0')}${data}`);
      assert.equal(swOf(chip.card.transmit(apdu)), '6A80', data);
    }
  });

  test('GetChipInfo in one block; the answer (> 256 bytes) comes in parts with 61xx', async () => {
    const chip = createTestChip(pki);
    const first = chip.card.transmit(hex('80E2910002EE0000'));
    assert.equal(dataOf(first).length, 256);
    assert.match(swOf(first), /^61/);
    const info = decodeChipInfo(await sendCommand((a) => chip.card.transmit(a), encodeGetChipInfo()));
    assert.equal(info.eid, chip.state.eid);
  });

  test('a TransferPermissionMessage across several blocks; the TransferRequest back through GET RESPONSE', async () => {
    const chip = createTestChip(pki);
    const message = transferPermissionMessage(smOf(pki, 'sm-alpha.example'), smOf(pki, 'sm-beta.example'), {
      eid: testEid(pki),
      counterValue: 1,
    });
    const apdus = storeDataApdus(message);
    assert.ok(apdus.length >= 3, `${message.length} bytes in ${apdus.length} blocks`);
    const transmitted: string[] = [];
    const answer = await sendCommand((a) => {
      const r = chip.card.transmit(a);
      transmitted.push(`${Buffer.from(a.subarray(0, 4)).toString('hex')} → ${swOf(r)}`);
      return r;
    }, message);
    const request = decodeTransferRequest(answer);
    assert.equal(request.data.newSmId, 'sm-beta.example');
    assert.ok(
      transmitted.some((t) => t.startsWith('00c00000')),
      transmitted.join('\n'),
    );
    assert.ok(
      transmitted.slice(0, apdus.length - 1).every((t) => t.startsWith('80e211') && t.endsWith('9000')),
    );
    // Re-delivery through the APDU layer: the same bytes again.
    assert.deepEqual(await sendCommand((a) => chip.card.transmit(a), message), answer);
  });

  test('a block out of sequence → 6A86 and the buffer is dropped; block 00 starts over', () => {
    const fake = new FakeProcessor(Uint8Array.of(0xaa));
    const card = new ChipCard(fake);
    const der = new Uint8Array(600).fill(7);
    const [b0, b1, b2] = storeDataApdus(der) as [Uint8Array, Uint8Array, Uint8Array];
    assert.equal(swOf(card.transmit(b0)), '9000');
    assert.equal(swOf(card.transmit(b2)), '6A86', 'block 2 after block 0');
    assert.equal(swOf(card.transmit(b1)), '6A86', 'the buffer is gone: block 1 is out of sequence too');
    assert.equal(fake.received.length, 0);
    assert.equal(swOf(card.transmit(b0)), '9000');
    assert.equal(swOf(card.transmit(b0)), '9000', 'block 00 again restarts the command');
    assert.equal(swOf(card.transmit(b1)), '9000');
    assert.equal(swOf(card.transmit(b2)), '9000');
    assert.deepEqual(fake.received, [der]);
  });

  test('61xx: xx is the count remaining, 00 for 256 or more; GET RESPONSE honours Le (00 = 256)', () => {
    const long = new ChipCard(new FakeProcessor(new Uint8Array(700)));
    assert.equal(swOf(long.transmit(hex('80E2910001EE'))), '6100', '444 remain');
    const answer = Uint8Array.from(randomBytes(500));
    const card = new ChipCard(new FakeProcessor(answer));
    const r1 = card.transmit(hex('80E2910001EE'));
    assert.deepEqual(dataOf(r1), answer.subarray(0, 256));
    assert.equal(swOf(r1), '61F4', '244 remain');
    const r2 = card.transmit(hex('00C0000010'));
    assert.deepEqual(dataOf(r2), answer.subarray(256, 272));
    assert.equal(swOf(r2), '61E4', '228 remain');
    const r3 = card.transmit(hex('00C0000000'));
    assert.deepEqual(dataOf(r3), answer.subarray(272));
    assert.equal(swOf(r3), '9000');
  });

  test('an unfetched answer is dropped by the next command', () => {
    const card = new ChipCard(new FakeProcessor(new Uint8Array(300)));
    assert.equal(swOf(card.transmit(hex('80E2910001EE'))), '612C');
    assert.equal(swOf(card.transmit(select)), '9000');
    assert.equal(swOf(card.transmit(hex('00C0000000'))), '6985');
  });

  test('a processor failure other than UnknownCommand → 6F00, reported to onError', () => {
    const errors: unknown[] = [];
    const card = new ChipCard(
      {
        process() {
          throw new Error('disk full');
        },
      },
      { onError: (e) => errors.push(e) },
    );
    assert.equal(swOf(card.transmit(hex('80E2910001EE'))), '6F00');
    assert.equal(errors.length, 1);
    const unknown = new ChipCard({
      process() {
        throw new UnknownCommand('x');
      },
    });
    assert.equal(swOf(unknown.transmit(hex('80E2910001EE'))), '6A80');
  });
});

describe('properties', () => {
  test('any command (1..4000 bytes) and answer (0..4000 bytes) pass through chaining unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 4000 }),
        fc.uint8Array({ minLength: 0, maxLength: 4000 }),
        fc.boolean(),
        async (command, answer, asynchronous) => {
          const fake = new FakeProcessor(answer);
          const card = new ChipCard(fake);
          const transmit = asynchronous
            ? async (a: Uint8Array) => card.transmit(a)
            : (a: Uint8Array) => card.transmit(a);
          const got = await sendCommand(transmit, command);
          assert.deepEqual(got, answer);
          assert.deepEqual(fake.received, [command]);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('GET RESPONSE with any Le sequence reassembles the answer; SW is 61xx until the last part', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 257, maxLength: 3000 }),
        fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 40 }),
        (answer, les) => {
          const card = new ChipCard(new FakeProcessor(answer));
          let r = card.transmit(hex('80E2910001EE'));
          const parts = [dataOf(r)];
          let i = 0;
          while (swOf(r) !== '9000') {
            const sw = swOf(r);
            assert.match(sw, /^61/);
            const received = parts.reduce((n, p) => n + p.length, 0);
            const left = answer.length - received;
            assert.equal(Number.parseInt(sw.slice(2), 16), left >= 256 ? 0 : left);
            const le = les[i++ % les.length]!;
            r = card.transmit(Uint8Array.of(0x00, 0xc0, 0x00, 0x00, le));
            assert.equal(dataOf(r).length, Math.min(le === 0 ? 256 : le, left));
            parts.push(dataOf(r));
          }
          assert.deepEqual(new Uint8Array(Buffer.concat(parts)), answer);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('block sequences with a skipped or repeated block never reach the processor', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 256, maxLength: 2000 }),
        fc.nat(),
        fc.integer({ min: 1, max: 3 }),
        (command, at, skip) => {
          const fake = new FakeProcessor(Uint8Array.of(1));
          const card = new ChipCard(fake);
          const apdus = storeDataApdus(command);
          const i = 1 + (at % (apdus.length - 1));
          // Block i replaced by block i + skip (out of sequence).
          const wrong = Uint8Array.from(apdus[i]!);
          wrong[3] = i + skip;
          for (const a of apdus.slice(0, i)) assert.equal(swOf(card.transmit(a)), '9000');
          assert.equal(swOf(card.transmit(wrong)), '6A86');
          for (const a of apdus.slice(i)) assert.equal(swOf(card.transmit(a)), '6A86');
          assert.equal(fake.received.length, 0);
        },
      ),
      { numRuns: 200 },
    );
  });
});
