"""Whether the training loop uses the channels-last memory layout: faster where measured, never where it hangs."""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


# Channels-last on CPU: measured 1.9-3.8x faster for training at width 16 on the 2-core AVX2 EPYC (torch 2.14.1,
# batch 128, one SGD step, best of 3: ResNet-18 615 vs 162 img/s, VGG-16-bn 1323 vs 685; 1.3-1.5x at width 32;
# this layout comparison is not kept in bench/, bench/results/throughput.json has the loop's resulting
# throughput), but oneDNN's AVX2 1x1 backward-weights kernel (torch 2.13/2.14) segfaults or spins forever with
# 4-8 input channels per group (docs/reliability.md): seen at 64x64 (bench/results/channels_last_probe.json), and
# reported at 32x32 and 16x16 on the same CPU family. So the CPU allow-list is what was measured safe: every conv
# past the RGB stem has at least this many input channels per group. Anything else trains in the default layout.
MIN_SAFE_CHANNELS_PER_GROUP = 16
STEM_MAX_IN_CHANNELS = 3  # the 3x3 stem on RGB/grey input was measured safe in channels-last at every width


def channels_last_is_safe(model: nn.Module, input_size: int | None = None) -> bool:
    """True when every conv's shape is on the measured-safe CPU allow-list for channels-last (see above).

    ``input_size`` is accepted for callers that know it, but the rule does not depend on it: the hang was reported
    at 16, 32 and 64 px alike, so size gives no safety."""
    del input_size
    for module in model.modules():
        if not isinstance(module, nn.Conv2d):
            continue
        per_group = module.in_channels // module.groups
        is_stem = module.in_channels <= STEM_MAX_IN_CHANNELS and module.groups == 1 and module.kernel_size != (1, 1)
        if not is_stem and per_group < MIN_SAFE_CHANNELS_PER_GROUP:
            return False
    return True


def use_channels_last(setting: str, model: nn.Module, input_size: int, device: torch.device) -> bool:
    """Whether the loop trains ``model`` in channels-last: ``auto`` and ``on`` mean "where known safe", so no
    setting can reach the oneDNN hang; on CUDA channels-last is always allowed (faster with tensor cores)."""
    if setting == "off":
        return False
    safe = device.type == "cuda" or channels_last_is_safe(model, input_size)
    if setting == "on" and not safe:
        log.warning("channels_last=on ignored: convs with < %d input channels per group hang or crash oneDNN's CPU "
                    "channels-last backward (docs/reliability.md); training in the default layout",
                    MIN_SAFE_CHANNELS_PER_GROUP)
    return safe
