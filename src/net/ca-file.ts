/** Reading the CA certificates a command line option names: a readable PEM file with a certificate in it. */
import { readFileSync } from 'node:fs';
import { errorCode, InvalidInput } from '../protocol/errors.ts';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

/** The PEM text of `file`; a UsageError naming `flag` when it cannot be read or holds no certificate. */
export function readCaFile(file: string, flag = '--ca'): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = errorCode(e);
    const why = code === undefined ? '' : ` (${code})`;
    throw new InvalidInput('UsageError', `cannot read ${flag} ${file}${why}`, { file });
  }
  if (!PEM_CERTIFICATE.test(text)) {
    throw new InvalidInput(
      'UsageError',
      `${flag} ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the CI certificate, not a key`,
      { file },
    );
  }
  return text;
}
