/**
 * A simulated chip carrying the real GSMA SGP.26 v1.0 test eUICC identity (PROTOCOL.md §3): its
 * published private key, its certificate and its EUM's, with a development CI for SMs. What it
 * signs must verify under the real eUICC certificate, and the chain must validate the way a new
 * SM checks it (§6.3) under the SGP.26 Test CI.
 */
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { answerTransferRequest, smOf, transferPermissionMessage } from '../../test/support/sm-messages.ts';
import { sendCommand } from '../device/apdu-client.ts';
import { decodeHandoverResult } from '../protocol/asn1/handover.ts';
import { decodeChipInfo, encodeGetChipInfo } from '../protocol/asn1/info.ts';
import { decodeTransferRequest } from '../protocol/asn1/request.ts';
import { decodeChipResult } from '../protocol/asn1/results.ts';
import { ecdsaVerify } from '../protocol/crypto/ecdsa.ts';
import { loadPrivateKeyPem } from '../protocol/crypto/keys.ts';
import { receiptValid } from '../protocol/handover-keys.ts';
import { type Certificate, loadCertificates } from '../protocol/pki/certificate.ts';
import { validateChain } from '../protocol/pki/validate.ts';
import { createChipState } from './create.ts';
import { chipFromState, createTestPki } from './testing.ts';

const vectors = new URL('../../test/vectors/sgp26/', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, vectors));
const cert = (path: string): Certificate => loadCertificates(read(path))[0]!;

const SGP26_EID = '89049032123451234512345678901235';
const euicc = cert('bc-java/CERT_EUICC_ECDSA_NIST.pem');
const eum = cert('bc-java/CERT_EUM_ECDSA_NIST.pem');
const ci2017 = cert('bc-java/CERT_CI_ECDSA_NIST.pem');
const euiccKey = loadPrivateKeyPem(read('euicc-rsp/euicc-key.pem').toString('utf8'));
const euiccPublicKey = createPublicKey({ key: Buffer.from(euicc.spki), format: 'der', type: 'spki' });

const pki = createTestPki('p256');
after(() => pki.remove());
const alpha = smOf(pki, 'sm-alpha.example');
const beta = smOf(pki, 'sm-beta.example');

function sgp26Chip(extraCis: readonly Certificate[] = []) {
  return chipFromState(
    createChipState({
      identity: { kind: 'existing', chipCertificate: euicc, chipKey: euiccKey, eumCertificate: eum },
      ciCertificates: [pki.ci.certificate, ...extraCis],
      smId: alpha.smId,
      smCertificate: alpha.certificate,
      profiles: [{ iccid: '8949020000000000001', operator: 'Test MNO', state: 'enabled' }],
    }),
  );
}

test('the SGP.26 chip answers GetChipInfo with its real EID and certificates', async () => {
  const chip = sgp26Chip();
  assert.equal(chip.state.eid, SGP26_EID);
  assert.equal(chip.state.curve, 'p256');
  const info = decodeChipInfo(await sendCommand((a) => chip.card.transmit(a), encodeGetChipInfo()));
  assert.equal(info.eid, SGP26_EID);
  assert.equal(info.assignedSmId, alpha.smId);
  assert.deepEqual(info.chipCertificate, euicc.der);
  assert.deepEqual(info.eumCertificate, eum.der);
});

test('its TransferRequest verifies under the real SGP.26 eUICC certificate, whose chain validates under the Test CI', async () => {
  const chip = sgp26Chip();
  const message = transferPermissionMessage(alpha, beta, { eid: SGP26_EID, counterValue: 1 });
  const bytes = await sendCommand((a) => chip.card.transmit(a), message);
  const request = decodeTransferRequest(bytes);
  assert.ok(ecdsaVerify(euiccPublicKey, request.dataRaw, request.signature));
  assert.deepEqual(request.chipCertificate, euicc.der);
  assert.deepEqual(request.eumCertificate, eum.der);
  // What the new SM does (§6.3): CI → EUM → chip, SGP.22 name constraint, EID = the permission's.
  const chain = validateChain(
    loadCertificates(Buffer.concat([request.chipCertificate, request.eumCertificate])),
    {
      trusted: [ci2017],
      expectRole: 'chip',
    },
  );
  assert.equal(chain.eid, SGP26_EID);
  assert.equal(chain.eid, request.data.permission.data.eid);

  // And the handover completes, with a receipt the new SM verifies.
  const answer = answerTransferRequest(beta, bytes);
  const result = decodeHandoverResult(await sendCommand((a) => chip.card.transmit(a), answer.command));
  assert.ok(ecdsaVerify(euiccPublicKey, result.dataRaw, result.signature));
  assert.ok(receiptValid(answer.keys.receiptKey, answer.commandDataRaw, result.data.receipt));
  assert.equal(chip.processor.state.assignment.smId, beta.smId);
});

test('an SGP.26 SM-DP+ certificate under a CI the chip holds is valid but not an SM: wrongRole', async () => {
  const sgp26Ci = cert('pysim/CertificateIssuer/CERT_CI_ECDSA_NIST.der');
  const chip = sgp26Chip([sgp26Ci]);
  const dpAuth = read('pysim/DPauth/CERT_S_SM_DPauth_ECDSA_NIST.der');
  const message = transferPermissionMessage(alpha, beta, {
    eid: SGP26_EID,
    counterValue: 1,
    newSmCertificate: new Uint8Array(dpAuth),
  });
  const result = decodeChipResult(await sendCommand((a) => chip.card.transmit(a), message));
  assert.equal(result.data.outcome, 'wrongRole');
  assert.ok(ecdsaVerify(euiccPublicKey, result.dataRaw, result.signature));
});
