/**
 * Refusals of a subscription manager, each with a stable code (PROTOCOL.md §6, §9: errors carry
 * stable codes). Callers branch on `code`. Messages and details never carry secrets.
 */
import { HandoverError } from '../protocol/errors.ts';

export type SmErrorCode =
  // input and authorisation
  | 'InvalidInput'
  | 'MalformedMessage'
  | 'NotAuthorised'
  // chips
  | 'ChipNotManaged'
  | 'ChipExists'
  | 'ChipCertificateInvalid'
  | 'EidMismatch'
  // peers
  | 'UnknownPeer'
  | 'PeerCertificateInvalid'
  // §6.1 authorisation of a permission
  | 'TransferPending'
  | 'ChipLocked'
  | 'UnlockCodeInvalid'
  | 'LockedOut'
  // §6.3 checks of a transfer request
  | 'BadSignature'
  | 'WrongSm'
  | 'PermissionExpired'
  | 'PermissionReused'
  | 'NoMatchingOrder'
  | 'OrderPending'
  | 'ActivationCodeMismatch'
  | 'InvalidOneTimeKey'
  // §6.4-6.6 results
  | 'UnknownTransfer'
  | 'UnknownPermission'
  | 'ResultMismatch'
  | 'ReceiptInvalid'
  | 'InvalidState'
  | 'TransferEnded'
  // bulk jobs
  | 'UnknownBulkJob'
  // store constraints
  | 'CounterReused';

export class SmError extends HandoverError {
  declare readonly code: SmErrorCode;
  constructor(code: SmErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
  }
}

/**
 * Thrown by an OperatorNotifier for an operator it has nowhere to send to (no webhook
 * configured): the notification is settled as `refused` with this code, never retried, so
 * notifications for such operators do not pile up as pending.
 */
export class NotificationNotConfigured extends HandoverError {
  constructor(operatorId: string) {
    const { code, message } = NotificationNotConfigured.record(operatorId);
    super(code, message, { operatorId });
  }

  /** What the outbox records as the refusal's lastError (without making an Error). */
  static record(operatorId: string): { code: string; message: string } {
    return {
      code: 'WebhookNotConfigured',
      message: `operator ${operatorId} has no webhook: the notification is not sent`,
    };
  }
}
