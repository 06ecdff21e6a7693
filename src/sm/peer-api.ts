/**
 * The peer API between SMs (PROTOCOL.md §9: ask for a transfer, deliver a completion, deliver
 * the outcome of a cancellation), as typed messages. The caller's SM id is not in the message:
 * it comes from the authenticated channel (the mTLS certificate's CN).
 */

export type PeerMessage =
  | {
      readonly type: 'TransferAsk';
      /** The asking (new) SM's transfer id, echoed back in later peer messages. */
      readonly askId: string;
      readonly eid: string;
      readonly activationCodeHash?: Uint8Array;
      /** The current MNO's unlock code, passed on by the new MNO (§8); wiped once delivered. */
      readonly unlockCode?: string;
    }
  | { readonly type: 'Completed'; readonly handoverResult: Uint8Array }
  | {
      readonly type: 'CancelOutcome';
      readonly permissionId: Uint8Array;
      readonly askId?: string;
      /** The chip-signed ChipResult (or HandoverResult) that ended the transfer at the current SM. */
      readonly chipResult: Uint8Array;
    }
  | {
      /** The current SM ended an ask without issuing a permission. */
      readonly type: 'AskOutcome';
      readonly askId: string;
      readonly eid: string;
      readonly outcome: 'rejected' | 'expired';
    };

export type PeerReply =
  | {
      readonly type: 'TransferAskAccepted';
      readonly transferId: string;
      readonly state: 'permitted' | 'awaitingApproval';
    }
  | { readonly type: 'Ack' };

export interface PeerAddress {
  readonly smId: string;
  /** The peer's base URL (https), from the directory. */
  readonly address: string;
}

/**
 * Delivers one peer message. Resolves with the peer's reply; rejects with a HandoverError when
 * the peer refused the message (a typed, final answer) and with anything else when it could not
 * be delivered (retried).
 */
export interface PeerTransport {
  send(callerSmId: string, target: PeerAddress, message: PeerMessage): Promise<PeerReply>;
}

/** What an SM tells its operators (webhooks later). No secrets. */
export type OperatorEvent =
  | 'approvalRequested'
  | 'permissionIssued'
  | 'transferRejected'
  | 'transferExpired'
  | 'transferCancelled'
  | 'transferCompleted'
  | 'transferFailed'
  | 'chipReleased'
  | 'chipAdopted'
  | 'chipRefused';

export interface OperatorNotification {
  readonly event: OperatorEvent;
  readonly eid: string;
  readonly transferId?: string;
  readonly state?: string;
  readonly at: Date;
}

export interface OperatorNotifier {
  notify(operatorId: string, notification: OperatorNotification): Promise<void>;
}
