import assert from 'node:assert/strict';
import type { AddressInfo, Socket } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { sendCommand } from '../device/apdu-client.ts';
import { connectTcpCard } from '../device/tcp-transport.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../protocol/asn1/info.ts';
import { ChipProcessor } from './processor.ts';
import { MemoryStateStore } from './store.ts';
import { FrameReader, frame, serveChip } from './tcp-server.ts';
import { createTestChipState, createTestPki } from './testing.ts';

test('frames survive any split of the byte stream', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }), fc.nat(), (payloads, cut) => {
      const stream = Buffer.concat(payloads.map((p) => frame(p)));
      const at = stream.length === 0 ? 0 : cut % stream.length;
      const r = new FrameReader();
      const got = [...r.push(stream.subarray(0, at)), ...r.push(stream.subarray(at))];
      assert.deepEqual(
        got.map((g) => Buffer.from(g)),
        payloads.map((p) => Buffer.from(p)),
      );
    }),
  );
});

test('a chip served over TCP answers GetChipInfo through STORE DATA and GET RESPONSE', async (t) => {
  const pki = createTestPki();
  t.after(() => pki.remove());
  const state = createTestChipState(pki);
  const server = serveChip(new ChipProcessor(new MemoryStateStore(state)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const link = await connectTcpCard('127.0.0.1', port);
  t.after(() => link.close());
  const info = decodeChipInfo(await sendCommand(link.transmit, encodeGetChipInfo()));
  assert.equal(info.eid, state.eid);
  assert.equal(info.assignedSmId, state.assignment.smId);
  assert.deepEqual(await link.transmit(Uint8Array.of(0x80, 0x10, 0, 0)), Uint8Array.of(0x6d, 0x00));
});

test('the device link reconnects to a chip server that restarted', async (t) => {
  const pki = createTestPki();
  t.after(() => pki.remove());
  const store = new MemoryStateStore(createTestChipState(pki));
  const sockets = new Set<Socket>();
  const listen = async (port: number) => {
    const server = serveChip(new ChipProcessor(store));
    server.on('connection', (s: Socket) => sockets.add(s));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    return server;
  };
  let server = await listen(0);
  const { port } = server.address() as AddressInfo;
  const link = await connectTcpCard('127.0.0.1', port);
  t.after(() => link.close());
  const eid = decodeChipInfo(await sendCommand(link.transmit, encodeGetChipInfo())).eid;
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  await assert.rejects(sendCommand(link.transmit, encodeGetChipInfo()), { code: 'ChipUnreachable' });
  server = await listen(port);
  t.after(() => server.close());
  assert.equal(decodeChipInfo(await sendCommand(link.transmit, encodeGetChipInfo())).eid, eid);
});
