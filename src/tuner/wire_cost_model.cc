#include "src/tuner/wire_cost_model.h"

#include <cmath>

#include "common/error.h"

namespace sqz {

double WireCostModel::messageCost(double bytes) const {
  if (bytes <= 0) return 0.0;
  switch (kind) {
    case Kind::Bits: return bytes;
    case Kind::Packets: return std::ceil(bytes / payloadBytes) * costPerPacket;
    case Kind::Time: break;
  }
  return 0.0;
}

std::string WireCostModel::describe() const {
  switch (kind) {
    case Kind::Bits: return "bits";
    case Kind::Packets:
      return formatString("packets(payload=%g,header=%g,cost=%g)", payloadBytes, headerBytes, costPerPacket);
    case Kind::Time: break;
  }
  return "time";
}

}  // namespace sqz
