// A user's own measure of what a message costs, replacing time (DESIGN.md
// section 3): `bits` counts the bytes on the wire (metered links), `packets`
// counts whole packets of a fixed payload with a per-packet header and cost
// (IoT radios: a 1-byte overflow costs a whole packet, so cost is a
// staircase in message size). `time` is the default: the profile's curves.
#pragma once

#include <string>

namespace sqz {

struct WireCostModel {
  enum class Kind { Time = 0, Bits = 1, Packets = 2 };
  Kind kind = Kind::Time;
  double payloadBytes = 0;   // packets: payload bytes per packet (> 0)
  double headerBytes = 0;    // packets: header bytes per packet (reported, and
                             // counted into costPerPacket by whoever sets it)
  double costPerPacket = 1;  // packets: cost units per packet

  bool usesTime() const { return kind == Kind::Time; }
  // Cost of one message of `bytes` (bits: bytes; packets: ceil(bytes /
  // payload) * costPerPacket). Meaningless for Time (the curves cost it).
  double messageCost(double bytes) const;
  // "time", "bits", "packets(payload=N,header=H,cost=C)".
  std::string describe() const;
};

}  // namespace sqz
