"""translate: paired image-to-image translation, pix2pix's own job (labels to photo, edges to shoe,
map to aerial, day to night).

G (a U-Net) maps an image of the input domain to the output domain; D (a PatchGAN) sees an output
beside its input; G's loss adds ``restore.l1_weight`` x L1 to the real image of the pair. The pairs
come from two places:

- paired data (``data.pairs: folders | side_by_side``): prepare writes each pair's input beside its
  image (data/prepared/*_inputs.npy), and the loop hands both, stacked along the channels, so that
  one shuffle and one flip keep each pair together;
- any folder of images (``data.pairs: null``): each image is paired with its edges (``degrade.edges``:
  dark lines on white, as pix2pix's edges2shoes), the threshold drawn per image from (seed, batch).
"""

from __future__ import annotations

import torch

from ganops.data.prepared import split_pairs
from ganops.tasks import degrade as deg
from ganops.tasks.restoration import Restoration


class Translate(Restoration, task="translate"):
    def target(self, images: torch.Tensor) -> torch.Tensor:
        return split_pairs(images)[0]

    def degrade(self, images: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images, given = split_pairs(images)
        if given is None:  # unpaired: the edges are the input
            t = self.params.restore.translate
            given = deg.edges(images, rng, blur=t.edge_blur, share=tuple(t.edge_share))
        return given, given

    def preview(self, inputs: torch.Tensor, channels: int) -> torch.Tensor:
        return inputs
