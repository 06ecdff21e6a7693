import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chip, dumpStore, EID, outgoing, storeContract, T0 } from './contract.ts';
import { MemoryStore } from './memory.ts';

storeContract('memory', { open: async () => new MemoryStore() });

test('memory: dump() is a deep copy of the state, and agrees with the listings', async () => {
  const store = new MemoryStore();
  await store.transaction(async (tx) => {
    await tx.putChip(chip());
    await tx.insertTransfer(outgoing('t1'));
    await tx.appendAudit({ at: T0, actor: 'system', action: 'x', details: {} });
  });
  const dump = store.dump();
  const listed = await dumpStore(store);
  assert.deepEqual([...dump.chips.values()], listed.chips);
  assert.deepEqual([...dump.transfers.values()], listed.transfers);
  assert.deepEqual(dump.audit, listed.audit);
  dump.chips.get(EID)!.chipCertificate.fill(7);
  assert.equal(store.dump().chips.get(EID)?.chipCertificate[0], 0x30);
});
