// ShoalWire: the bytes Shoal puts on the wire.
//
// Control messages are protobuf (`Shoal_V1_Envelope`, generated from `Protos/` and committed);
// task inputs and outputs travel as extra frames encoded by `BinaryEncoder`, a compact binary
// `Codable` coder that writes arrays of trivial numeric types as raw bytes. This module knows
// nothing of sockets or scheduling.
