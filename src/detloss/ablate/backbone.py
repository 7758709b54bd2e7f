"""The detectors' shared convolutional backbone: three stride-2 convolutions, features at stride 8.

GroupNorm rather than BatchNorm: its statistics are per image, so the same global batch split over
distributed ranks trains exactly as on one process.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

STRIDE = 8
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25


def conv_block(channels_in: int, channels_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, GroupNorm (groups of 8 channels), ReLU."""
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False),
        nn.GroupNorm(channels_out // 8, channels_out),
        nn.ReLU(inplace=True),
    )


class Backbone(nn.Module):
    """uint8 images ``(B, 3, H, W)`` -> features ``(B, widths[-1], H / 8, W / 8)``.

    A stride-2 stem to ``widths[0]`` channels, then per further width a stride-2 and a stride-1
    convolution (no convolution at half resolution: on a CPU it would cost as much as the rest).
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_block(3, widths[0], stride=2)]
        channels = widths[0]
        for width in widths[1:]:
            layers += [conv_block(channels, width, stride=2), conv_block(width, width)]
            channels = width
        self.layers = nn.Sequential(*layers)
        self.channels = channels

    def forward(self, images: Tensor) -> Tensor:
        x = images.to(next(self.parameters()).dtype) / 255
        return self.layers((x - PIXEL_MEAN) / PIXEL_STD)  # type: ignore[no-any-return]
