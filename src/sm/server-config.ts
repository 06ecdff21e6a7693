/**
 * The SM server's configuration file (ARCHITECTURE.md "Runtime pieces": `handover sm start
 * --config FILE`), validated once where it enters: first its JSON shape (the typebox schema below,
 * which is also its documentation), then the files it names (keys, certificates: they must form a
 * valid SM identity under the configured CIs, PROTOCOL.md §3). Every refusal is a ConfigInvalid
 * naming the field and what to do. Relative paths resolve against the config file's folder.
 *
 * Example (examples/sm-alpha.json):
 *   {
 *     "smId": "sm-alpha.example",
 *     "keyFile": "pki/sm-sm-alpha.example.key",
 *     "certFile": "pki/sm-sm-alpha.example.pem",
 *     "ciFiles": ["pki/ci.pem"],
 *     "listen": { "host": "127.0.0.1", "port": 8441 },
 *     "dataDir": "data/sm-alpha",
 *     "peers": [{ "smId": "sm-beta.example", "baseUrl": "https://127.0.0.1:8442",
 *                 "certFile": "pki/sm-sm-beta.example.pem" }],
 *     "operators": [{ "id": "mno-a", "tokenSha256": "<hex SHA-256 of the token>", "approvalRequired": false,
 *                     "webhook": { "url": "https://mno-a.example/events", "secretFile": "secrets/mno-a" } }],
 *     "permissionValidityHours": 24
 *   }
 */
import { createHash, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { type Static, Type } from 'typebox';
import { Compile } from 'typebox/compile';
import { loadPrivateKeyPem, privateKeyToPem, publicPointOf } from '../protocol/crypto/keys.ts';
import { errorCode, HandoverError } from '../protocol/errors.ts';
import {
  bytesEqual,
  type Certificate,
  certificateToPem,
  formatName,
  loadCertificates,
} from '../protocol/pki/certificate.ts';
import { smIdProblem, validateChain } from '../protocol/pki/validate.ts';
import { describeIssues } from './http/schema-issues.ts';

/** A configuration that cannot be used. `details.field` names the field (a JSON path such as `peers/0/baseUrl`). */
export class ConfigInvalid extends HandoverError {
  constructor(field: string, message: string, details: Record<string, unknown> = {}) {
    super('ConfigInvalid', field === '' ? message : `${field}: ${message}`, { ...details, field });
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const SmId = Type.String({
  minLength: 1,
  maxLength: 255,
  description: "An SM id: the CN of the SM's certificate (PROTOCOL.md §2)",
});
const FilePath = Type.String({
  minLength: 1,
  description: "A file path, relative to the config file's folder",
});

export const SmConfigSchema = Type.Object(
  {
    $comment: Type.Optional(
      Type.Union([Type.String(), Type.Array(Type.String())], { description: 'Free text, ignored' }),
    ),
    smId: SmId,
    keyFile: Type.String({
      minLength: 1,
      description: "PEM private key of this SM's certificate (PKCS#8 or SEC1); also the TLS key",
    }),
    certFile: Type.String({
      minLength: 1,
      description: 'PEM SM certificate (SM role, CN = smId); also the TLS server and client certificate',
    }),
    ciFiles: Type.Array(FilePath, {
      minItems: 1,
      description: 'PEM CI certificates: the roots for chips, peer SMs and TLS',
    }),
    listen: Type.Object(
      {
        host: Type.String({ minLength: 1, description: 'Interface to listen on, e.g. 127.0.0.1 or 0.0.0.0' }),
        port: Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port; 0 picks a free one' }),
      },
      { additionalProperties: false },
    ),
    dataDir: Type.String({
      minLength: 1,
      description:
        'Folder for the SQLite store (<dataDir>/sm.sqlite); DATABASE_URL selects PostgreSQL instead',
    }),
    peers: Type.Array(
      Type.Object(
        {
          smId: SmId,
          baseUrl: Type.String({
            minLength: 1,
            maxLength: 255,
            description: "The peer's https base URL (put into permissions as newSmAddress)",
          }),
          certFile: Type.String({
            minLength: 1,
            description: 'PEM SM certificate of the peer (CN = its smId)',
          }),
        },
        { additionalProperties: false },
      ),
      { description: 'The directory of peer SMs: the only SMs that may call the peer API' },
    ),
    operators: Type.Array(
      Type.Object(
        {
          id: Type.String({ pattern: '^[\\w.:-]{1,128}$', description: 'Operator (MNO) id' }),
          tokenSha256: Type.String({
            pattern: '^[0-9a-fA-F]{64}$',
            description: "Hex SHA-256 of the operator's bearer token (the token itself is never stored)",
          }),
          approvalRequired: Type.Boolean({
            description: "Whether a new SM's ask for this operator's chips waits for its approval (§6.1)",
          }),
          webhook: Type.Optional(
            Type.Object(
              {
                url: Type.String({
                  minLength: 1,
                  maxLength: 2048,
                  description:
                    "Where the operator's notifications are POSTed: https, or http only to 127.0.0.1, ::1 or localhost",
                }),
                secretFile: Type.Optional(
                  Type.String({
                    minLength: 1,
                    description:
                      'File holding the HMAC-SHA256 key of X-Handover-Signature (its text, trimmed; at least 16 characters)',
                  }),
                ),
              },
              { additionalProperties: false, description: "The operator's webhook (PROTOCOL.md §9)" },
            ),
          ),
        },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
    permissionValidityHours: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 24 * 366,
        description: 'notAfter = now + this (default 24, §6.1); also the approval deadline',
      }),
    ),
    logLevel: Type.Optional(
      Type.Union(
        LOG_LEVELS.map((l) => Type.Literal(l)),
        { description: 'Log level (default info); HANDOVER_LOG_LEVEL overrides' },
      ),
    ),
  },
  { additionalProperties: false },
);

export type SmConfigFile = Static<typeof SmConfigSchema>;

export interface PeerConfig {
  readonly smId: string;
  readonly baseUrl: string;
  /** Absolute. */
  readonly certFile: string;
}

export interface WebhookConfig {
  /** https, or http to a loopback host. */
  readonly url: string;
  /** Absolute. Read when the server starts (webhooks.ts). */
  readonly secretFile?: string;
}

export interface OperatorTokenConfig {
  readonly id: string;
  /** Lower-case hex. */
  readonly tokenSha256: string;
  readonly approvalRequired: boolean;
  readonly webhook?: WebhookConfig;
}

/** A validated configuration, every path absolute. */
export interface SmServerConfig {
  readonly smId: string;
  readonly keyFile: string;
  readonly certFile: string;
  readonly ciFiles: readonly string[];
  readonly listen: { readonly host: string; readonly port: number };
  readonly dataDir: string;
  readonly peers: readonly PeerConfig[];
  readonly operators: readonly OperatorTokenConfig[];
  readonly permissionValidityHours: number;
  readonly logLevel?: LogLevel;
  /** The file it came from, for messages. */
  readonly source?: string;
}

export const DEFAULT_PERMISSION_VALIDITY_HOURS = 24;

/** What to do, per field name (the last segment of the path). */
const HINTS: Record<string, string> = {
  smId: 'give the CN of the SM certificate, e.g. "sm-alpha.example"',
  keyFile: 'give the path of the PEM private key, e.g. "pki/sm-sm-alpha.example.key"',
  certFile: 'give the path of a PEM SM certificate, e.g. "pki/sm-sm-alpha.example.pem"',
  ciFiles: 'list the PEM CI certificate files, e.g. ["pki/ci.pem"]',
  listen: 'give { "host": "127.0.0.1", "port": 8443 }',
  host: 'give an interface address such as "127.0.0.1" or "0.0.0.0"',
  port: 'give a TCP port from 0 to 65535',
  dataDir: 'give a folder for the store, e.g. "data/sm-alpha"',
  peers: 'list the peer SMs as { "smId", "baseUrl", "certFile" } (an empty list is allowed)',
  baseUrl: 'give the https base URL of the peer, e.g. "https://sm-beta.example:8443"',
  operators: 'list at least one operator as { "id", "tokenSha256", "approvalRequired" }',
  id: 'give 1 to 128 letters, digits or . _ : -',
  tokenSha256:
    "give the hex SHA-256 of the operator's bearer token, e.g. the output of `printf %s TOKEN | sha256sum`",
  approvalRequired: 'give true or false',
  webhook: 'give { "url": "https://…", "secretFile": "secrets/mno-a.webhook" }',
  url: 'give an https URL, e.g. "https://mno-a.example/handover-events" (http only to 127.0.0.1 or localhost)',
  secretFile: 'give the path of a file holding the webhook secret, e.g. the output of `openssl rand -hex 32`',
  permissionValidityHours: 'give a number of hours above 0 (default 24)',
  logLevel: `give one of ${LOG_LEVELS.join(', ')}`,
};

const hint = (field: string): string => {
  const name =
    field
      .split('/')
      .filter((s) => !/^\d+$/.test(s))
      .pop() ?? '';
  const h = HINTS[name];
  return h ? `; ${h}` : '';
};

const checkShape = Compile(SmConfigSchema);

function shapeError(source: string, value: unknown): ConfigInvalid {
  const issue = describeIssues([...checkShape.Errors(value)]);
  if (issue.kind === 'unknown') {
    return new ConfigInvalid(issue.field, `unknown field in ${source}: remove it or check its spelling`, {
      source,
    });
  }
  const what = issue.kind === 'missing' ? 'missing' : issue.message;
  return new ConfigInvalid(issue.field, `${what} in ${source}${hint(issue.field)}`, { source });
}

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** A webhook URL: https, or plain http only to this machine; no credentials or fragment in it. */
function webhookUrlCheck(value: string, field: string, source: string): void {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigInvalid(field, `is not a URL${hint('url')}`, { source });
  }
  const plainHttpOk = url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);
  if (url.protocol !== 'https:' && !plainHttpOk) {
    throw new ConfigInvalid(
      field,
      `a webhook must use https (plain http only to 127.0.0.1, ::1 or localhost)${hint('url')}`,
      { source },
    );
  }
  if (url.username !== '' || url.password !== '' || url.hash !== '') {
    throw new ConfigInvalid(
      field,
      'a webhook URL carries no credentials or fragment: authenticate deliveries by their X-Handover-Signature (secretFile)',
      { source },
    );
  }
}

/**
 * Validates a parsed config object and resolves its paths against `baseDir`. Checks the shape and
 * what the shape cannot say (https URLs, unique ids and tokens); files are read by loadSmMaterial.
 */
export function parseSmConfig(
  value: unknown,
  baseDir: string,
  source = 'the SM configuration',
): SmServerConfig {
  if (!checkShape.Check(value)) throw shapeError(source, value);
  const v = value as SmConfigFile;
  const smIdBad = smIdProblem(v.smId);
  if (smIdBad) throw new ConfigInvalid('smId', `${smIdBad}${hint('smId')}`, { source });
  const seen = new Set<string>([v.smId]);
  v.peers.forEach((p, i) => {
    const field = `peers/${i}`;
    const bad = smIdProblem(p.smId);
    if (bad) throw new ConfigInvalid(`${field}/smId`, `${bad}${hint('smId')}`, { source });
    if (seen.has(p.smId)) {
      throw new ConfigInvalid(
        `${field}/smId`,
        p.smId === v.smId
          ? 'an SM is not its own peer: remove this entry'
          : `peer ${p.smId} is listed twice: keep one entry`,
        { source },
      );
    }
    seen.add(p.smId);
    let url: URL;
    try {
      url = new URL(p.baseUrl);
    } catch {
      throw new ConfigInvalid(`${field}/baseUrl`, `"${p.baseUrl}" is not a URL${hint('baseUrl')}`, {
        source,
      });
    }
    if (url.protocol !== 'https:' || url.search !== '' || url.hash !== '' || url.username !== '') {
      throw new ConfigInvalid(
        `${field}/baseUrl`,
        `"${p.baseUrl}" must be a plain https URL (no query, fragment or credentials)${hint('baseUrl')}`,
        { source },
      );
    }
  });
  const ids = new Set<string>();
  const tokens = new Set<string>();
  v.operators.forEach((o, i) => {
    if (ids.has(o.id))
      throw new ConfigInvalid(`operators/${i}/id`, `operator ${o.id} is listed twice`, { source });
    ids.add(o.id);
    const token = o.tokenSha256.toLowerCase();
    if (tokens.has(token)) {
      throw new ConfigInvalid(
        `operators/${i}/tokenSha256`,
        'two operators have the same token: give each operator its own token',
        { source },
      );
    }
    tokens.add(token);
    if (o.webhook) webhookUrlCheck(o.webhook.url, `operators/${i}/webhook/url`, source);
  });
  const hours = v.permissionValidityHours ?? DEFAULT_PERMISSION_VALIDITY_HOURS;
  if (hours * 3_600_000 < 1000) {
    throw new ConfigInvalid(
      'permissionValidityHours',
      `is under one second${hint('permissionValidityHours')}`,
      {
        source,
      },
    );
  }
  const path = (p: string): string => resolve(baseDir, p);
  return {
    smId: v.smId,
    keyFile: path(v.keyFile),
    certFile: path(v.certFile),
    ciFiles: v.ciFiles.map(path),
    listen: { host: v.listen.host, port: v.listen.port },
    dataDir: path(v.dataDir),
    peers: v.peers.map((p) => ({ smId: p.smId, baseUrl: p.baseUrl, certFile: path(p.certFile) })),
    operators: v.operators.map((o) => ({
      id: o.id,
      tokenSha256: o.tokenSha256.toLowerCase(),
      approvalRequired: o.approvalRequired,
      ...(o.webhook && {
        webhook: {
          url: o.webhook.url,
          ...(o.webhook.secretFile !== undefined && { secretFile: path(o.webhook.secretFile) }),
        },
      }),
    })),
    permissionValidityHours: hours,
    ...(v.logLevel !== undefined && { logLevel: v.logLevel as LogLevel }),
    source,
  };
}

/** Reads and validates a config file (shape and paths; the files it names are read at start). */
export function readSmConfig(file: string): SmServerConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const why = errorCode(e) ?? 'unreadable';
    throw new ConfigInvalid('', `cannot read the config file ${file} (${why}): check the --config path`, {
      source: file,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigInvalid('', `${file} is not JSON (${e instanceof Error ? e.message : String(e)})`, {
      source: file,
    });
  }
  return parseSmConfig(value, dirname(resolve(file)), file);
}

// ---- the files a configuration names ----

export interface PeerMaterial {
  readonly smId: string;
  readonly baseUrl: string;
  readonly certificate: Certificate;
}

/** Keys and certificates of a configuration, loaded and cross-checked. */
export interface SmMaterial {
  readonly privateKey: KeyObject;
  /** PKCS#8 PEM of the private key, for TLS. Never logged. */
  readonly keyPem: string;
  readonly certificate: Certificate;
  readonly certPem: string;
  readonly trustedCis: readonly Certificate[];
  /** The CIs as one PEM bundle (TLS `ca`). */
  readonly caPem: string;
  readonly peers: ReadonlyMap<string, PeerMaterial>;
}

function readConfigFile(config: SmServerConfig, field: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const why = errorCode(e) ?? 'unreadable';
    throw new ConfigInvalid(
      field,
      `cannot read ${file} (${why}): fix the path, or create a development PKI with \`handover pki init --curve p256 --out <folder>\``,
      { source: config.source, file },
    );
  }
}

function certificatesIn(config: SmServerConfig, field: string, file: string): Certificate[] {
  const bytes = readConfigFile(config, field, file);
  try {
    return loadCertificates(bytes);
  } catch (e) {
    throw new ConfigInvalid(field, `${file}: ${(e as Error).message}`, { source: config.source, file });
  }
}

function smCertificate(
  config: SmServerConfig,
  field: string,
  file: string,
  smId: string,
  trustedCis: readonly Certificate[],
  at: Date,
): Certificate {
  const cert = certificatesIn(config, field, file)[0]!;
  let chainSmId: string | undefined;
  try {
    chainSmId = validateChain([cert], { trusted: trustedCis, at, expectRole: 'sm' }).smId;
  } catch (e) {
    throw new ConfigInvalid(
      field,
      `${file} is not a valid SM certificate under the configured CIs: ${(e as Error).message}`,
      { source: config.source, file },
    );
  }
  if (chainSmId !== smId) {
    throw new ConfigInvalid(
      field,
      `${file} is the certificate of "${chainSmId ?? formatName(cert.subject)}", not of "${smId}": give the right certificate or fix the smId`,
      { source: config.source, file },
    );
  }
  return cert;
}

/** Reads every file the configuration names and checks they form a valid SM identity at `at`. */
export function loadSmMaterial(config: SmServerConfig, at: Date = new Date()): SmMaterial {
  const trustedCis = config.ciFiles.flatMap((f, i) => certificatesIn(config, `ciFiles/${i}`, f));
  const certificate = smCertificate(config, 'certFile', config.certFile, config.smId, trustedCis, at);
  let privateKey: KeyObject;
  try {
    privateKey = loadPrivateKeyPem(readConfigFile(config, 'keyFile', config.keyFile).toString('utf8'));
  } catch (e) {
    if (e instanceof ConfigInvalid) throw e;
    throw new ConfigInvalid('keyFile', `${config.keyFile}: ${(e as Error).message}`, {
      source: config.source,
    });
  }
  if (!bytesEqual(publicPointOf(privateKey), certificate.publicPoint)) {
    throw new ConfigInvalid(
      'keyFile',
      `${config.keyFile} is not the key of ${config.certFile}: give the matching pair`,
      {
        source: config.source,
      },
    );
  }
  const peers = new Map<string, PeerMaterial>();
  config.peers.forEach((p, i) => {
    const cert = smCertificate(config, `peers/${i}/certFile`, p.certFile, p.smId, trustedCis, at);
    peers.set(p.smId, { smId: p.smId, baseUrl: p.baseUrl, certificate: cert });
  });
  return {
    privateKey,
    keyPem: privateKeyToPem(privateKey),
    certificate,
    certPem: certificateToPem(certificate),
    trustedCis,
    caPem: trustedCis.map((c) => certificateToPem(c)).join(''),
    peers,
  };
}

// ---- the store's location ----

export type StoreLocation = { readonly sqlitePath: string } | { readonly databaseUrl: string };

export const SQLITE_FILE = 'sm.sqlite';

/** `<dataDir>/sm.sqlite`, unless DATABASE_URL names a PostgreSQL database. */
export function storeLocation(config: SmServerConfig, env: NodeJS.ProcessEnv = process.env): StoreLocation {
  const url = env.DATABASE_URL;
  if (url !== undefined && url !== '') return { databaseUrl: url };
  return { sqlitePath: join(config.dataDir, SQLITE_FILE) };
}

/** Hex SHA-256 of a bearer token, as the config's tokenSha256 holds it. */
export function tokenSha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
