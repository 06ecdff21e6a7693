/**
 * Recognises any message of PROTOCOL.md §5 by its outer tag and decodes it strictly.
 * Used by the chip's command dispatcher and by `handover decode`.
 */

import { readSingle, type Tlv } from '../der/reader.ts';
import { sameTag, type Tag, tagName, U } from '../der/tag.ts';
import { MalformedMessage } from '../errors.ts';
import {
  type HandoverCommand,
  type HandoverCommandData,
  type HandoverResult,
  type HandoverResultData,
  handoverCommandDataCodec,
  handoverResultDataCodec,
  type KeyDerivationInfo,
  readHandoverCommand,
  readHandoverResult,
  readKeyDerivationInfo,
  TAG_HANDOVER_COMMAND,
  TAG_HANDOVER_COMMAND_DATA,
  TAG_HANDOVER_RESULT,
  TAG_HANDOVER_RESULT_DATA,
  TAG_KEY_DERIVATION_INFO,
} from './handover.ts';
import { type ChipInfo, readChipInfo, readEmpty, TAG_CHIP_INFO, TAG_GET_CHIP_INFO } from './info.ts';
import {
  readTransferPermission,
  readTransferPermissionMessage,
  TAG_TRANSFER_PERMISSION_DATA,
  TAG_TRANSFER_PERMISSION_MESSAGE,
  type TransferPermission,
  type TransferPermissionData,
  type TransferPermissionMessage,
  transferPermissionDataCodec,
} from './permission.ts';
import {
  type ConfirmProfileSwitch,
  type ConfirmProfileSwitchData,
  confirmProfileSwitchDataCodec,
  readConfirmProfileSwitch,
  TAG_CONFIRM_PROFILE_SWITCH,
  TAG_CONFIRM_PROFILE_SWITCH_DATA,
  TAG_PROFILE_ROLLBACK,
} from './profile.ts';
import {
  readTransferRequest,
  TAG_TRANSFER_REQUEST,
  TAG_TRANSFER_REQUEST_DATA,
  type TransferRequest,
  type TransferRequestData,
  transferRequestDataCodec,
} from './request.ts';
import {
  type CancelPermission,
  type CancelPermissionData,
  type ChipResult,
  type ChipResultData,
  cancelPermissionDataCodec,
  chipResultDataCodec,
  readCancelPermission,
  readChipResult,
  TAG_CANCEL_PERMISSION,
  TAG_CANCEL_PERMISSION_DATA,
  TAG_CHIP_RESULT,
  TAG_CHIP_RESULT_DATA,
} from './results.ts';

export type AnyMessage =
  | { type: 'TransferPermissionData'; value: TransferPermissionData }
  | { type: 'TransferPermission'; value: TransferPermission }
  | { type: 'TransferPermissionMessage'; value: TransferPermissionMessage }
  | { type: 'TransferRequestData'; value: TransferRequestData }
  | { type: 'TransferRequest'; value: TransferRequest }
  | { type: 'HandoverCommandData'; value: HandoverCommandData }
  | { type: 'HandoverCommand'; value: HandoverCommand }
  | { type: 'HandoverResultData'; value: HandoverResultData }
  | { type: 'HandoverResult'; value: HandoverResult }
  | { type: 'CancelPermissionData'; value: CancelPermissionData }
  | { type: 'CancelPermission'; value: CancelPermission }
  | { type: 'ChipResultData'; value: ChipResultData }
  | { type: 'ChipResult'; value: ChipResult }
  | { type: 'KeyDerivationInfo'; value: KeyDerivationInfo }
  | { type: 'GetChipInfo'; value: Record<string, never> }
  | { type: 'ChipInfo'; value: ChipInfo }
  | { type: 'ConfirmProfileSwitchData'; value: ConfirmProfileSwitchData }
  | { type: 'ConfirmProfileSwitch'; value: ConfirmProfileSwitch }
  | { type: 'ProfileRollback'; value: Record<string, never> };

export type MessageType = AnyMessage['type'];

type Decoder = (t: Tlv) => AnyMessage;

const DECODERS: readonly (readonly [Tag, Decoder])[] = [
  [
    TAG_TRANSFER_PERMISSION_DATA,
    (t) => ({ type: 'TransferPermissionData', value: transferPermissionDataCodec.decodeData(t) }),
  ],
  [U.sequence, (t) => ({ type: 'TransferPermission', value: readTransferPermission(t) })],
  [
    TAG_TRANSFER_PERMISSION_MESSAGE,
    (t) => ({ type: 'TransferPermissionMessage', value: readTransferPermissionMessage(t) }),
  ],
  [
    TAG_TRANSFER_REQUEST_DATA,
    (t) => ({ type: 'TransferRequestData', value: transferRequestDataCodec.decodeData(t) }),
  ],
  [TAG_TRANSFER_REQUEST, (t) => ({ type: 'TransferRequest', value: readTransferRequest(t) })],
  [
    TAG_HANDOVER_COMMAND_DATA,
    (t) => ({ type: 'HandoverCommandData', value: handoverCommandDataCodec.decodeData(t) }),
  ],
  [TAG_HANDOVER_COMMAND, (t) => ({ type: 'HandoverCommand', value: readHandoverCommand(t) })],
  [
    TAG_HANDOVER_RESULT_DATA,
    (t) => ({ type: 'HandoverResultData', value: handoverResultDataCodec.decodeData(t) }),
  ],
  [TAG_HANDOVER_RESULT, (t) => ({ type: 'HandoverResult', value: readHandoverResult(t) })],
  [
    TAG_CANCEL_PERMISSION_DATA,
    (t) => ({ type: 'CancelPermissionData', value: cancelPermissionDataCodec.decodeData(t) }),
  ],
  [TAG_CANCEL_PERMISSION, (t) => ({ type: 'CancelPermission', value: readCancelPermission(t) })],
  [TAG_CHIP_RESULT_DATA, (t) => ({ type: 'ChipResultData', value: chipResultDataCodec.decodeData(t) })],
  [TAG_CHIP_RESULT, (t) => ({ type: 'ChipResult', value: readChipResult(t) })],
  [TAG_KEY_DERIVATION_INFO, (t) => ({ type: 'KeyDerivationInfo', value: readKeyDerivationInfo(t) })],
  [
    TAG_GET_CHIP_INFO,
    (t) => {
      readEmpty(t, 'GetChipInfo');
      return { type: 'GetChipInfo', value: {} };
    },
  ],
  [TAG_CHIP_INFO, (t) => ({ type: 'ChipInfo', value: readChipInfo(t) })],
  [
    TAG_CONFIRM_PROFILE_SWITCH_DATA,
    (t) => ({ type: 'ConfirmProfileSwitchData', value: confirmProfileSwitchDataCodec.decodeData(t) }),
  ],
  [TAG_CONFIRM_PROFILE_SWITCH, (t) => ({ type: 'ConfirmProfileSwitch', value: readConfirmProfileSwitch(t) })],
  [
    TAG_PROFILE_ROLLBACK,
    (t) => {
      readEmpty(t, 'ProfileRollback');
      return { type: 'ProfileRollback', value: {} };
    },
  ],
];

/** Decodes one complete message; throws MalformedMessage naming the field for anything else. */
export function decodeMessage(bytes: Uint8Array): AnyMessage {
  const top = readSingle(bytes, 'message');
  for (const [t, decode] of DECODERS) if (sameTag(top, t)) return decode(top);
  throw new MalformedMessage('message', `unknown message tag ${tagName(top)}`);
}
