#include "src/tuner/cost_model.h"

namespace sqz {

double CostModel::stageTransferSeconds(const Stage& s) const {
  if (s.steps <= 0 || s.messagesPerStep <= 0) return 0.0;
  const double stepBytes = s.messageBytes * s.messagesPerStep * (s.linkSharers > 0 ? s.linkSharers : 1);
  return s.steps * profile_.curve(s.link).time(stepBytes);
}

CostBreakdown CostModel::evaluate(const Candidate& c) const {
  CostBreakdown b;
  const CodecThroughput& t = profile_.codecs;
  double modelCost = 0;
  for (const Stage& s : c.stages) {
    b.encodeSeconds += t.encodeSeconds(device_, s.codec, s.encodeElements);
    b.decodeSeconds += t.decodeSeconds(device_, s.codec, s.decodeElements);
    b.transferSeconds += stageTransferSeconds(s);
    b.bytesSent += s.bytesSentPerRank();
    if (!profile_.costModel.usesTime())
      modelCost += static_cast<double>(s.steps) * s.messagesPerStep * profile_.costModel.messageCost(s.messageBytes);
  }
  // Every call also pays the agreement round (and, for tuned calls, the
  // statistics pass): the same for all candidates, but it dilutes the
  // advantage of plans whose own cost is tiny.
  b.transferSeconds += profile_.callOverheadSeconds + c.overheadSeconds;
  b.seconds = b.encodeSeconds + b.transferSeconds + b.decodeSeconds;
  b.cost = profile_.costModel.usesTime() ? b.seconds : modelCost;
  return b;
}

}  // namespace sqz
