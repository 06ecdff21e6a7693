import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CURVES } from '../crypto/curves.ts';
import { publicPointOf } from '../crypto/keys.ts';
import { makeEid } from '../eid.ts';
import { HandoverError } from '../errors.ts';
import { createDevPki, DEFAULT_SM_IDS, loadDevPki, smFileBase } from './dev-pki.ts';
import { issueChip } from './issue.ts';
import { validateChain } from './validate.ts';

const root = mkdtempSync(join(tmpdir(), 'handover-devpki-'));
after(() => rmSync(root, { recursive: true, force: true }));
const expectCode = (code: string) => (e: unknown) => e instanceof HandoverError && e.code === code;

for (const curve of CURVES) {
  describe(`createDevPki / loadDevPki on ${curve}`, () => {
    const dir = join(root, curve);
    const created = createDevPki({
      curve,
      dir,
      eumOrg: 'Dev EUM',
      eidPrefix: '8900101',
      smIds: ['sm-a.example', 'sm-b.example'],
    });

    it('writes the certificates, PKCS#8 keys (mode 600) and the manifest', () => {
      for (const f of [
        'ci.pem',
        'ci.key',
        'eum.pem',
        'eum.key',
        'sm-sm-a.example.pem',
        'sm-sm-b.example.key',
        'pki.json',
      ]) {
        assert.ok(existsSync(join(dir, f)), f);
      }
      const key = readFileSync(join(dir, 'ci.key'), 'utf8');
      assert.match(key, /^-----BEGIN PRIVATE KEY-----/);
      assert.equal(statSync(join(dir, 'ci.key')).mode & 0o777, 0o600);
      const manifest = JSON.parse(readFileSync(join(dir, 'pki.json'), 'utf8'));
      assert.deepEqual(manifest, {
        version: 1,
        curve,
        eidPrefix: '8900101',
        eumOrg: 'Dev EUM',
        smIds: ['sm-a.example', 'sm-b.example'],
        ci: { cert: 'ci.pem', key: 'ci.key' },
        eum: { cert: 'eum.pem', key: 'eum.key' },
        sms: [
          { smId: 'sm-a.example', cert: 'sm-sm-a.example.pem', key: 'sm-sm-a.example.key' },
          { smId: 'sm-b.example', cert: 'sm-sm-b.example.pem', key: 'sm-sm-b.example.key' },
        ],
      });
    });

    it('loads back what it wrote, and every chain validates', () => {
      const pki = loadDevPki(dir);
      assert.deepEqual(pki.manifest, created.manifest);
      assert.deepEqual(pki.ci.certificate.der, created.ci.certificate.der);
      assert.deepEqual(publicPointOf(pki.eum.privateKey), pki.eum.certificate.publicPoint);
      const trusted = [pki.ci.certificate];
      for (const [smId, sm] of pki.sms) {
        const v = validateChain([sm.certificate], { trusted, at: new Date(), expectRole: 'sm' });
        assert.equal(v.smId, smId);
        assert.equal(v.curve, curve);
      }
      assert.equal(validateChain([pki.eum.certificate], { trusted, expectRole: 'eum' }).role, 'eum');
      const eid = makeEid('890010100000000000000000000007');
      const chip = issueChip({ issuerCert: pki.eum.certificate, issuerKey: pki.eum.privateKey, eid });
      const v = validateChain([chip.certificate, pki.eum.certificate], { trusted, expectRole: 'chip' });
      assert.equal(v.eid, eid);
    });
  });
}

describe('createDevPki options and errors', () => {
  it('defaults to two SM ids', () => {
    const pki = createDevPki({ curve: 'p256', dir: join(root, 'defaults') });
    assert.deepEqual([...pki.sms.keys()], DEFAULT_SM_IDS);
    assert.equal(pki.manifest.sms[0]!.cert, 'sm-sm-alpha.example.pem');
  });

  it('sanitises file names and refuses ids that collide after it', () => {
    assert.equal(smFileBase('../etc/pass wd'), 'sm-.._etc_pass_wd');
    const pki = createDevPki({ curve: 'p256', dir: join(root, 'odd'), smIds: ['../x y'] });
    assert.ok(existsSync(join(root, 'odd', 'sm-.._x_y.pem')));
    assert.equal(loadDevPki(join(root, 'odd')).sms.get('../x y')?.certificate.subject.commonName, '../x y');
    assert.equal(pki.manifest.smIds[0], '../x y');
    assert.throws(
      () => createDevPki({ curve: 'p256', dir: join(root, 'clash'), smIds: ['a b', 'a/b'] }),
      expectCode('InvalidSmId'),
    );
    assert.throws(
      () => createDevPki({ curve: 'p256', dir: join(root, 'dup'), smIds: ['a', 'a'] }),
      expectCode('InvalidSmId'),
    );
  });

  it('refuses to overwrite an existing PKI unless forced', () => {
    const dir = join(root, 'again');
    const first = createDevPki({ curve: 'p256', dir });
    assert.throws(() => createDevPki({ curve: 'p256', dir }), /exists already/);
    const second = createDevPki({ curve: 'p256', dir, force: true });
    assert.notDeepEqual(second.ci.certificate.der, first.ci.certificate.der);
  });

  it('loadDevPki: a missing folder, a bad manifest, a key that does not match', () => {
    assert.throws(() => loadDevPki(join(root, 'nowhere')), expectCode('InvalidDevPki'));
    const dir = join(root, 'broken');
    createDevPki({ curve: 'p256', dir });
    writeFileSync(join(dir, 'ci.key'), readFileSync(join(dir, 'eum.key')));
    assert.throws(() => loadDevPki(dir), /ci.key is not the key of ci.pem/);
    const manifest = JSON.parse(readFileSync(join(dir, 'pki.json'), 'utf8'));
    writeFileSync(
      join(dir, 'pki.json'),
      JSON.stringify({ ...manifest, ci: { cert: '../ci.pem', key: 'ci.key' } }),
    );
    assert.throws(() => loadDevPki(dir), /plain name/);
    writeFileSync(join(dir, 'pki.json'), JSON.stringify({ ...manifest, curve: 'p384' }));
    assert.throws(() => loadDevPki(dir), expectCode('InvalidDevPki'));
  });
});
