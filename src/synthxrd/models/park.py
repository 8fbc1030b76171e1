"""The CNNs of Park et al. (2017), as re-used by Schopmans, Reiser & Friederich (2023).

Park, Chung, Kim, Seo, Hwang & Park, "Classification of crystal structure using a convolutional
neural network", IUCrJ 4 (2017) 520, doi:10.1107/S205225251700714X. Three 1D convolutions with
average pooling, then three dense layers; the dense sizes differ between Park's 7-label (crystal
system), 101-label (extinction group) and 230-label (space group) networks.

Layer by layer as in the reference (aimat-lab/ML4pXRDs, ``training/models.py``:
``build_model_park_small``/``_medium``/``_big``/``_extended``; Keras ``padding="same"`` for the
convolutions, ``"valid"`` pooling whose stride defaults to the pool size)::

    conv 80, kernel 100, stride 5, same → ReLU [→ dropout 0.3] → avg-pool 3, stride 2
    conv 80, kernel  50, stride 5, same → ReLU [→ dropout 0.3] → avg-pool 3, stride 3
    conv 80, kernel  25, stride 2, same → ReLU [→ dropout 0.3] → avg-pool 3, stride 3
    flatten → dense D1 → ReLU [→ dropout 0.5] → dense D2 → ReLU [→ dropout 0.5] → logits

with (D1, D2) = (700, 70) small, (4040, 202) medium, (2300, 1150) big. For 8501 points the
feature map is 80 × 9 = 720 values. ``park_extended`` is the reference's "extended" variant:
four convolutions of 120 channels (kernels 100/75/50/25, all stride 2, each followed by
avg-pool 2 stride 2; 120 × 33 = 3960 features) and dense 3000-2000-1000.

The reference switches all dropout layers on together (``use_dropout``: 0.3 after the
convolutions, 0.5 after the hidden dense layers); here the two rates are separate options,
both off by default as in the reference. Weights start as in Keras (Glorot-uniform kernels,
zero biases).

Parameters for 145 classes and 8501 points: park_small 1.05 M, park_medium 4.25 M,
park_big 4.96 M, park_extended 22.2 M.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

from torch import Tensor, nn

from synthxrd.errors import ConfigError
from synthxrd.models.registry import register_model
from synthxrd.models.resnet1d import Conv1dSame, as_batch

__all__ = ["ParkCNN", "park_small", "park_medium", "park_big", "park_extended", "scale_convs"]

#: (channels, kernel, stride) of the three convolutions of Park et al.
PARK_CONVS = ((80, 100, 5), (80, 50, 5), (80, 25, 2))
#: (size, stride) of the average pooling after each convolution (Keras: stride None = size).
PARK_POOLS = ((3, 2), (3, 3), (3, 3))
#: Extended variant of the reference: one more convolution, 120 channels, stride 2 throughout.
EXTENDED_CONVS = ((120, 100, 2), (120, 75, 2), (120, 50, 2), (120, 25, 2))
EXTENDED_POOLS = ((2, 2), (2, 2), (2, 2), (2, 2))
#: The grid step (degrees) the layer sizes above were designed for.
REFERENCE_STEP = 0.01


class ParkCNN(nn.Module):
    """Convolutions ("same" padding) + ReLU + average pooling, flatten, dense layers, logits.

    Parameters
    ----------
    num_classes
        Number of output logits (>= 1).
    input_length
        Pattern length in points; fixes the flatten size. Too short an input (the feature map
        vanishes in a pooling layer) raises ``ValueError``.
    convs
        (out_channels, kernel_size, stride) per convolution.
    pools
        (pool_size, stride) of the average pooling after each convolution (same length as ``convs``).
    dense
        Widths of the hidden dense layers (each followed by ReLU).
    conv_dropout, dense_dropout
        Dropout after each convolution's ReLU / each hidden dense ReLU (reference with
        ``use_dropout=True``: 0.3 and 0.5).
    in_channels
        Input channels.
    """

    def __init__(self, num_classes: int, input_length: int = 8501, *,
                 convs: Sequence[tuple[int, int, int]] = PARK_CONVS,
                 pools: Sequence[tuple[int, int]] = PARK_POOLS, dense: Sequence[int] = (700, 70),
                 conv_dropout: float = 0.0, dense_dropout: float = 0.0, in_channels: int = 1) -> None:
        super().__init__()
        for what, v in (("num_classes", num_classes), ("input_length", input_length),
                        ("in_channels", in_channels)):
            _check_int(what, v)
        if len(convs) != len(pools) or not convs:
            raise ConfigError(f"need one pooling layer per convolution, got {len(convs)} convolutions "
                              f"and {len(pools)} pooling layers")
        for what, p in (("conv_dropout", conv_dropout), ("dense_dropout", dense_dropout)):
            if not (isinstance(p, (int, float)) and 0.0 <= p < 1.0):
                raise ConfigError(f"{what} must be a probability in [0, 1), got {p!r}")
        self.in_channels = in_channels
        self.input_length = int(input_length)
        self.config: dict | None = None  # set by synthxrd.models.build

        layers: list[nn.Module] = []
        channels, length = in_channels, int(input_length)
        for i, ((out, kernel, stride), (size, pool_stride)) in enumerate(zip(convs, pools), 1):
            for what, v in (("channels", out), ("kernel", kernel), ("stride", stride),
                            ("pool size", size), ("pool stride", pool_stride)):
                _check_int(f"{what} of layer {i}", v)
            layers += [Conv1dSame(channels, out, kernel, stride), nn.ReLU(inplace=True)]
            if conv_dropout:
                layers.append(nn.Dropout(conv_dropout))
            layers.append(nn.AvgPool1d(size, pool_stride))
            channels = out
            length = -(-length // stride)                       # "same" convolution
            length = (length - size) // pool_stride + 1 if length >= size else 0   # "valid" pooling
            if length < 1:
                raise ConfigError(f"input_length={input_length} is too short for this network: the "
                                  f"feature map vanishes at pooling layer {i}")
        self.features = nn.Sequential(*layers)
        self.feature_length = length

        head: list[nn.Module] = [nn.Flatten()]
        width = channels * length
        for units in dense:
            _check_int("dense width", units)
            head += [nn.Linear(width, units), nn.ReLU(inplace=True)]
            if dense_dropout:
                head.append(nn.Dropout(dense_dropout))
            width = units
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)

        for m in self.modules():  # Keras defaults: glorot_uniform kernels, zero biases
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) of patterns (B, L) or (B, in_channels, L) with L = input_length."""
        x = as_batch(x, self.in_channels, self.input_length, type(self).__name__)
        return self.classifier(self.features(x))


def _check_int(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ConfigError(f"{what} must be an integer >= 1, got {value!r}")


@register_model
def park_small(num_classes: int, *, input_length: int = 8501, input_step: float = 0.01, conv_dropout: float = 0.0,
               dense_dropout: float = 0.0) -> ParkCNN:
    """Park et al. 2017 (IUCrJ 4, 520) 7-label network: dense 700-70 (reference ``park_small``)."""
    return _park(num_classes, input_length, input_step, PARK_CONVS, PARK_POOLS, (700, 70), conv_dropout, dense_dropout)


@register_model
def park_medium(num_classes: int, *, input_length: int = 8501, input_step: float = 0.01, conv_dropout: float = 0.0,
                dense_dropout: float = 0.0) -> ParkCNN:
    """Park et al. 2017 101-label network: dense 4040-202 (reference ``park_medium``)."""
    return _park(num_classes, input_length, input_step, PARK_CONVS, PARK_POOLS, (4040, 202), conv_dropout,
                 dense_dropout)


@register_model
def park_big(num_classes: int, *, input_length: int = 8501, input_step: float = 0.01, conv_dropout: float = 0.0,
             dense_dropout: float = 0.0) -> ParkCNN:
    """Park et al. 2017 230-label network: dense 2300-1150 (reference ``park_big``)."""
    return _park(num_classes, input_length, input_step, PARK_CONVS, PARK_POOLS, (2300, 1150), conv_dropout,
                 dense_dropout)


@register_model
def park_extended(num_classes: int, *, input_length: int = 8501, input_step: float = 0.01,
                  conv_dropout: float = 0.0, dense_dropout: float = 0.0) -> ParkCNN:
    """Extended Park CNN of Schopmans et al. 2023 (reference ``build_model_park_extended``): four
    convolutions of 120 channels (kernels 100/75/50/25, stride 2, avg-pool 2), dense 3000-2000-1000."""
    return _park(num_classes, input_length, input_step, EXTENDED_CONVS, EXTENDED_POOLS, (3000, 2000, 1000),
                 conv_dropout, dense_dropout)


def _park(num_classes: int, input_length: int, input_step: float, convs, pools, dense, conv_dropout: float,
          dense_dropout: float) -> ParkCNN:
    convs = scale_convs(convs, pools, _step_factor(input_step))
    return ParkCNN(num_classes, input_length, convs=convs, pools=pools, dense=dense, conv_dropout=conv_dropout,
                   dense_dropout=dense_dropout)


def _step_factor(input_step: float) -> float:
    if not (isinstance(input_step, (int, float)) and input_step > 0):
        raise ConfigError(f"input_step must be a positive step in degrees, got {input_step!r}")
    return float(input_step) / REFERENCE_STEP


def scale_convs(convs: Sequence[tuple[int, int, int]], pools: Sequence[tuple[int, int]],
                factor: float) -> tuple[tuple[int, int, int], ...]:
    """The convolutions of a network designed for the 0.01° grid, resized for a grid ``factor`` times coarser.

    Each layer keeps, as nearly as integers allow, its kernel's width and its output spacing in
    degrees: with ``c`` the cumulative stride (in 0.01° points) before a convolution in the original
    network and ``c'`` the one in the resized network (``c'`` starts at ``factor``),

        kernel' = max(1, round(kernel · c / c')),   stride' = max(1, round(c · stride / c')),

    pooling layers unchanged. ``factor = 1`` returns the layers as given; e.g. park's
    (100, 5), (50, 5), (25, 2) become (25, 1), (62, 6), (26, 2) for the 0.04° grid (factor 4),
    whose feature map then spans 8.64° per position instead of 9°.
    """
    if factor == 1:
        return tuple(tuple(c) for c in convs)
    out, orig, new = [], 1.0, float(factor)
    for (channels, kernel, stride), (_, pool_stride) in zip(convs, pools):
        k = max(1, round(kernel * orig / new))
        s = max(1, round(orig * stride / new))
        out.append((channels, k, s))
        orig, new = orig * stride * pool_stride, new * s * pool_stride
    return tuple(out)
