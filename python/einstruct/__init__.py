"""einstruct: structured linear layers (Monarch, BTT, BTT-MoE, low-rank,
Kronecker, TT, block-diagonal, DYAD) from Python, through the runtime's C
ABI: analysis and search return Python objects, einstruct.nn builds layers
as torch.nn.Modules at run time, convert() replaces a model's nn.Linear
layers with the structures a model-level search chooses, and
load_checkpoint() reads fly/M2 and einsum-search checkpoints; Mixer
runs the SSD, Hydra, M2-convolution and Monarch-along-the-sequence mixers,
blocks.Hydra and blocks.M2 the whole blocks around them."""
from . import blocks
from .api import analyze, project, search, search_model
from .checkpoints import load_checkpoint
from .convert import convert
from .nn import BTTMoE, Linear, Mixer

__all__ = ["analyze", "search", "search_model", "project", "convert",
           "load_checkpoint", "Linear", "BTTMoE", "Mixer", "blocks", "nn"]
