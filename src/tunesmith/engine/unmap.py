"""Letting go of the weights file transformers mapped into memory.

transformers loads a safetensors checkpoint as views of the file, mapped into memory. Once a
model's matrices are converted to another dtype (bf16 to train, float16 to serve), a tensor
still viewing the file (the embeddings, a norm, a bias) keeps the whole mapping, and with it
every page the conversion read: the original weights, a second copy of the model in the
process's memory (513 MiB of RSS for the packaged base).
"""

from __future__ import annotations


def own_copies(model, converted) -> None:
    """Give each of ``model``'s parameters and buffers not of dtype ``converted`` memory of its
    own, so that no tensor views the loaded file any more and its mapping goes."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.dtype != converted:
            tensor.data = tensor.data.clone()
