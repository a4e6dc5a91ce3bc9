// The search model's Layer (search/Layer.h) of one einstruct.layer or
// einstruct.moe_layer op: what the passes that cost or plan a layer read.
#pragma once
#include "dialects/EinstructDialect.h"
#include "search/Layer.h"

namespace einstruct {

// The op's one-term Layer (with θ, and experts for BTT-MoE), or an error
// naming what in its attributes is wrong.
Result<Layer> layerOfOp(LayerOp op);
Result<Layer> layerOfOp(MoeLayerOp op);

} // namespace einstruct
