/** `list -r HOST`: a usbipd's exportable devices (OP_REQ_DEVLIST → OP_REP_DEVLIST). */
import { UsbipError, PeerDataError, WireCode, RuntimeCode } from "../protocol/errors.js";
import type { ListedDevice } from "../protocol/messages.js";
import { opStatusName, OpStatus } from "../protocol/constants.js";
import { formatHostPort } from "../protocol/host-port.js";
import { opExchange, type OpExchangeOptions } from "./op-exchange.js";

export async function remoteDevices(o: OpExchangeOptions): Promise<ListedDevice[]> {
  const { sock, reply } = await opExchange(o, { kind: "OP_REQ_DEVLIST" }, "OP_REP_DEVLIST");
  sock.destroy();
  if (reply.kind !== "OP_REP_DEVLIST") throw new PeerDataError(WireCode.UNEXPECTED_OP, `${reply.kind} instead of OP_REP_DEVLIST`);
  if (reply.status !== OpStatus.OK) throw new UsbipError(RuntimeCode.IMPORT, `${formatHostPort(o.host, o.port)} refused the device list: ${opStatusName(reply.status)}`);
  return reply.devices;
}
