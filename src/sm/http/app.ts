/**
 * The SM's HTTPS application: one fastify instance, one encapsulated plugin per interface of
 * PROTOCOL.md §9 (operator, peer, device), typebox schemas that validate and document at once,
 * OpenAPI at GET /docs/json, and one error handler that turns everything into
 * `{ error: { code, message, details } }` with a stable code.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server, ServerOptions } from 'node:https';
import fastifySwagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';
import { errorCode, HandoverError } from '../../protocol/errors.ts';
import type { Certificate } from '../../protocol/pki/certificate.ts';
import type { LogLevel, OperatorTokenConfig } from '../server-config.ts';
import type { SmStore } from '../store/types.ts';
import type { SubscriptionManager } from '../subscription-manager.ts';
import { devicePlugin } from './device-plugin.ts';
import { ApiError, errorBody, type HttpErrorCode, type MappedError, mapError, statusOf } from './errors.ts';
import { type IdempotencyStore, MemoryIdempotencyStore } from './idempotency.ts';
import { OperatorAuthenticator } from './operator-auth.ts';
import { operatorPlugin } from './operator-plugin.ts';
import { peerPlugin } from './peer-plugin.ts';
import { describeIssues, type SchemaIssue } from './schema-issues.ts';
import { strictValidatorCompiler } from './strict-validator.ts';

export type SmApp = FastifyInstance<
  Server,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** 256 KiB: far above any message of PROTOCOL.md §5 (a few KiB with certificates). */
export const BODY_LIMIT = 256 * 1024;

export interface SmLoggerOptions {
  readonly level?: LogLevel;
  /** Default: stdout. */
  readonly stream?: { write(msg: string): void };
}

/**
 * Paths pino blanks out, in case a serializer ever includes them: credentials in headers, codes
 * and keys in bodies. The default request serializer logs only method, url, host and address.
 */
export const REDACTED_LOG_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["idempotency-key"]',
  'headers.authorization',
  'body.unlockCode',
  'body.activationCode',
  '*.unlockCode',
  '*.activationCode',
  '*.token',
  '*.keyPem',
  '*.privateKey',
];

export interface SmAppOptions {
  readonly smId: string;
  readonly sm: SubscriptionManager;
  /** For the peer API's status reads. */
  readonly store: SmStore;
  readonly tls: ServerOptions;
  readonly trustedCis: readonly Certificate[];
  /** SM ids allowed on the peer API. */
  readonly peers: ReadonlySet<string>;
  readonly operators: readonly OperatorTokenConfig[];
  readonly clock: () => Date;
  readonly idempotency?: IdempotencyStore;
  /** false: no logging. */
  readonly logger: false | SmLoggerOptions;
  readonly bodyLimit?: number;
}

/** How long a whole request (headers and body) may take to arrive. */
export const REQUEST_TIMEOUT_MS = 30_000;

function validationError(error: FastifyError): MappedError {
  const where = error.validationContext ?? 'body';
  const issue = describeIssues((error.validation ?? []) as readonly SchemaIssue[]);
  const path = issue.field === '' ? '' : `.${issue.field.replaceAll('/', '.')}`;
  return {
    status: 400,
    body: {
      error: {
        code: 'InvalidInput',
        message: `${where}${path} ${issue.message}`,
        details: { in: where, field: issue.field },
      },
    },
    expected: true,
  };
}

/** Fastify's own refusals (body parsing, limits, validation) mapped to our codes. */
function mapFastifyError(error: FastifyError, requestId: string, bodyLimit: number): MappedError {
  if (error.validation) return validationError(error);
  const as = (code: HttpErrorCode, message: string, details: Record<string, unknown> = {}): MappedError => ({
    status: statusOf(code) ?? 400,
    body: errorBody(code, message, details),
    expected: true,
  });
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return as('PayloadTooLarge', `the request body is over ${bodyLimit} bytes`, { limit: bodyLimit });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return as('MalformedJson', 'the request body is not valid JSON');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return as('UnsupportedMediaType', 'send the body as application/json');
  }
  const status = error.statusCode;
  if (error.code?.startsWith('FST_') && status !== undefined && status >= 400 && status < 500) {
    return { status: 400, body: errorBody('BadRequest', 'the request could not be read'), expected: true };
  }
  return mapError(error, requestId);
}

function loggerConfig(o: false | SmLoggerOptions) {
  if (o === false) return false;
  return {
    level: o.level ?? 'info',
    redact: { paths: [...REDACTED_LOG_PATHS], censor: '[redacted]' },
    ...(o.stream && { stream: o.stream }),
  };
}

export async function buildSmApp(o: SmAppOptions): Promise<SmApp> {
  const bodyLimit = o.bodyLimit ?? BODY_LIMIT;
  const app: SmApp = Fastify({
    https: o.tls,
    logger: loggerConfig(o.logger),
    bodyLimit,
    // Keep-alive connections that are idle are closed on close(); requests in flight finish.
    forceCloseConnections: 'idle',
    // A request must arrive whole within this time: a body that never ends does not hold its
    // connection for ever (fastify's default, 0, disables Node's limit).
    requestTimeout: REQUEST_TIMEOUT_MS,
    // URLs fastify cannot route (bad percent-encoding and the like): our error shape, not fastify's.
    frameworkErrors: (error, _request, frameworkReply) => {
      (frameworkReply as FastifyReply)
        .code(400)
        .header('content-type', 'application/json; charset=utf-8')
        .send(JSON.stringify(errorBody('BadRequest', `the request URL could not be read (${error.code})`)));
    },
    // Bytes that are not HTTP at all, or headers past the limit: answered in our error shape too.
    clientErrorHandler: (error, socket) => {
      if (!socket.writable) return;
      const tooLarge = errorCode(error) === 'HPE_HEADER_OVERFLOW';
      const body = JSON.stringify(
        errorBody(
          tooLarge ? 'HeadersTooLarge' : 'BadRequest',
          tooLarge ? 'the request line and headers are too large' : 'the request is not valid HTTP',
        ),
      );
      const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(
        `HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    },
  })
    .withTypeProvider<TypeBoxTypeProvider>()
    .setValidatorCompiler(strictValidatorCompiler);

  // JSON only: a text body is refused as UnsupportedMediaType, not read as a string.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const mapped =
      error instanceof HandoverError
        ? mapError(error, request.id)
        : mapFastifyError(error, request.id, request.routeOptions.bodyLimit ?? bodyLimit);
    if (mapped.expected) {
      request.log.info({ code: mapped.body.error.code, status: mapped.status }, 'request refused');
    } else {
      request.log.error({ err: error }, 'request failed');
    }
    if (error instanceof ApiError && error.code === 'Unauthenticated')
      reply.header('www-authenticate', 'Bearer');
    return reply.code(mapped.status).send(mapped.body);
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(errorBody('RouteNotFound', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: `Handover SM ${o.smId}`,
        version: '1',
        description:
          'One subscription manager (PROTOCOL.md §9). Errors: { error: { code, message, details } } with stable codes. ' +
          'Every mutating operator call needs an Idempotency-Key header.',
      },
      tags: [
        { name: 'operator', description: 'The MNOs of this SM (bearer token)' },
        {
          name: 'peer',
          description:
            'Other SMs, over mutual TLS: the client certificate is the calling SM certificate (its CN is the SM id)',
        },
        { name: 'device', description: 'Device agents (no credentials: payloads are signed end to end)' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer' },
        },
      },
    },
  });
  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(operatorPlugin, {
    sm: o.sm,
    auth: new OperatorAuthenticator(o.operators),
    idempotency: o.idempotency ?? new MemoryIdempotencyStore(),
    clock: o.clock,
  });
  await app.register(peerPlugin, {
    sm: o.sm,
    store: o.store,
    trustedCis: o.trustedCis,
    peers: o.peers,
    clock: o.clock,
  });
  await app.register(devicePlugin, { sm: o.sm });
  return app;
}
