/**
 * The device side of the APDU transport against a scripted card: block layout, 61xx handling,
 * and ApduError (with the status word) for everything else. The card here is a script, not the
 * chip: the client must work from bytes alone.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HandoverError } from '../protocol/errors.ts';
import { ApduError, selectIsdR, sendCommand, storeDataApdus } from './apdu-client.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex').toUpperCase();
const bytes = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

test('storeDataApdus: 255-byte blocks, P1 11 then 91, P2 counting from 00, `80 E2 P1 P2 Lc data` with no Le (§5)', () => {
  const der = new Uint8Array(600).map((_, i) => i & 0xff);
  const apdus = storeDataApdus(der);
  assert.equal(apdus.length, 3);
  assert.equal(hex(apdus[0]!.subarray(0, 5)), '80E21100FF');
  assert.equal(hex(apdus[1]!.subarray(0, 5)), '80E21101FF');
  assert.equal(hex(apdus[2]!.subarray(0, 5)), '80E291025A');
  assert.equal(apdus[0]!.length, 5 + 255);
  assert.equal(apdus[1]!.length, 5 + 255);
  assert.equal(apdus[2]!.length, 5 + 90);
  assert.equal(hex(storeDataApdus(Uint8Array.of(0xe1, 0x01, 0x00))[0]!), '80E2910003E10100');
  assert.deepEqual(Buffer.concat(apdus.map((a) => a.subarray(5, 5 + a[4]!))), Buffer.from(der));
  assert.equal(storeDataApdus(new Uint8Array(255)).length, 1);
  assert.equal(storeDataApdus(new Uint8Array(256)).length, 2);
  assert.throws(
    () => storeDataApdus(new Uint8Array(0)),
    (e: unknown) => e instanceof HandoverError && e.code === 'MessageEmpty',
  );
  assert.throws(
    () => storeDataApdus(new Uint8Array(255 * 256 + 1)),
    (e: unknown) => e instanceof HandoverError && e.code === 'MessageTooLong',
  );
});

test('sendCommand follows 61xx with GET RESPONSE Le = xx and concatenates the parts', async () => {
  const script: [string, string][] = [
    ['80E2910003E10100', `${'AA'.repeat(256)}6100`],
    ['00C0000000', `${'BB'.repeat(256)}6103`],
    ['00C0000003', 'CCCCCC9000'],
  ];
  const sent: string[] = [];
  const answer = await sendCommand(async (apdu) => {
    const step = script[sent.length];
    sent.push(hex(apdu));
    assert.ok(step, 'no more APDUs expected');
    assert.equal(hex(apdu), step[0]);
    return bytes(step[1]);
  }, bytes('E10100'));
  assert.equal(sent.length, 3);
  assert.equal(answer.length, 515);
  assert.equal(hex(answer.subarray(510)), 'BBBBCCCCCC');
});

test('a status word other than 9000 / 61xx is an ApduError carrying it', async () => {
  for (const sw of ['6A80', '6A86', '6F00', '6985', '6D00']) {
    await assert.rejects(
      sendCommand(() => bytes(sw), bytes('EE00')),
      (e: unknown) =>
        e instanceof ApduError &&
        e.code === 'ApduError' &&
        e.sw === Number.parseInt(sw, 16) &&
        e.details.sw === sw,
    );
  }
  // A refused middle block, and a middle block answered with data.
  await assert.rejects(
    sendCommand(() => bytes('6A86'), new Uint8Array(300)),
    (e: unknown) => e instanceof ApduError && e.sw === 0x6a86,
  );
  await assert.rejects(
    sendCommand(() => bytes('019000'), new Uint8Array(300)),
    ApduError,
  );
  // Fewer than two bytes.
  await assert.rejects(
    sendCommand(() => new Uint8Array(1), bytes('EE00')),
    ApduError,
  );
  // GET RESPONSE failing.
  let n = 0;
  await assert.rejects(
    sendCommand(() => (n++ === 0 ? bytes('AA6110') : bytes('6F00')), bytes('EE00')),
    (e: unknown) => e instanceof ApduError && e.sw === 0x6f00,
  );
});

test('selectIsdR sends the ISD-R AID and accepts only 9000', async () => {
  let sent = '';
  await selectIsdR((a) => {
    sent = hex(a);
    return bytes('9000');
  });
  assert.equal(sent, '00A4040010A0000005591010FFFFFFFF8900000100');
  await assert.rejects(
    selectIsdR(() => bytes('6A82')),
    (e: unknown) => e instanceof ApduError && e.sw === 0x6a82,
  );
});
