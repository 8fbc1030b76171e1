"""One-dimensional ResNets with group normalisation, as used by Schopmans, Reiser & Friederich (2023).

The trunk is built torchvision-style (``torchvision/models/resnet.py``): one class, :class:`ResNet1D`,
takes a block type and the number of blocks per stage; :class:`BasicBlock1D` and
:class:`Bottleneck1D` carry ``expansion``; ``_make_layer`` builds one stage. The named depths are thin
registry functions at the bottom of this file.

Architecture of the reference (aimat-lab/ML4pXRDs, ``training/models.py::build_model_resnet_i`` with
``square_kernel_size_and_stride=True, use_group_norm=True, add_additional_dense_layer=True``, and
``training/utils/resnet_keras_1D.py``, itself the TensorFlow Model Garden ResNet made 1D):

===========  ===============================================================================
stem         conv 64, kernel 7, stride 2, "same" padding, no bias → GroupNorm → ReLU →
             max-pool 3, stride 2, "same" padding
stages       widths 64/128/256/512, strides 1/4/4/4 (the 2D stride 2 "squared"), block kernel 9
             (the 2D 3×3 "squared"); the *first* block of every stage has a 1×1 projection
             shortcut (+ GroupNorm), even where shape does not change (stage 1 of ResNet-10)
blocks       basic: conv k9 (stride) → GN → ReLU → conv k9 → GN → +shortcut → ReLU;
             bottleneck: 1×1 → GN → ReLU → k9 (stride) → GN → ReLU → 1×1 (×4) → GN → +shortcut → ReLU
norm         GroupNorm, 32 groups, ε = 1e-3 (tensorflow-addons ``GroupNormalization`` defaults)
head         flatten → dense 256 → dense ``num_classes``.  There is **no activation** between the
             two dense layers in the reference; ``head="flatten"`` reproduces that exactly.
===========  ===============================================================================

Depths (``layers``): ResNet-10 = basic [1, 1, 1, 1]; ResNet-50 = bottleneck [3, 4, 6, 3];
ResNet-101 = bottleneck [3, 4, 23, 3]. With 8501 input points the trunk ends at 34 positions, so the
flatten head alone holds 34·512·256 ≈ 4.5 M (ResNet-10) or 34·2048·256 ≈ 17.8 M (ResNet-50/101)
weights. Totals for 145 classes: 9.40 M / 41.36 M / 60.35 M parameters; the paper reports 9.4 M,
41.4 M and 60.4 M.

TensorFlow's "same" padding is asymmetric for strided layers (``out = ceil(L / stride)``, the extra
pad goes to the right); :class:`Conv1dSame` and :class:`MaxPool1dSame` reproduce it, so feature-map
lengths and the flatten size equal the reference's for every input length.

Additions over the reference:

- ``head="pool"``: global average pooling → dense 256 → GELU (or ReLU) → dropout → logits.
  4.3 M (ResNet-10) or 17.3 M (ResNet-50/101) fewer parameters at 8501 points, and the network
  accepts any input length.
- ``zero_init_residual=True``: the last GroupNorm of every residual branch starts at γ = 0, so each
  branch starts at zero and a block passes on (the ReLU of) its shortcut (Goyal et al. 2017,
  "Accurate, Large Minibatch SGD", https://arxiv.org/abs/1706.02677; torchvision's
  ``zero_init_residual``). Off by default, as in the reference.

References
----------
He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, arXiv 1512.03385.
Wu & He, "Group Normalization", ECCV 2018, arXiv 1803.08494.
Schopmans, Reiser & Friederich, Digital Discovery 2 (2023) 1414, arXiv 2303.11699.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch.nn.functional as F
from torch import Tensor, nn

from synthxrd.errors import ConfigError
from synthxrd.models.registry import register_model

__all__ = [
    "BasicBlock1D",
    "Bottleneck1D",
    "Conv1dSame",
    "MaxPool1dSame",
    "ResNet1D",
    "same_padding",
    "as_batch",
    "resnet10",
    "resnet50",
    "resnet101",
    "resnet10_pool",
    "resnet50_pool",
    "resnet101_pool",
]

#: Group count of every GroupNorm (reference: tensorflow-addons default, Wu & He's default).
NORM_GROUPS = 32
#: GroupNorm epsilon of the reference (tensorflow-addons ``GroupNormalization`` default; torch's is 1e-5).
NORM_EPS = 1e-3
HEADS = ("flatten", "pool")
HEAD_ACTIVATIONS = ("identity", "relu", "gelu")


# --------------------------------------------------------------------------------------------
# TensorFlow-style "same" layers and input handling (shared with synthxrd.models.park)


def same_padding(length: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """Left and right padding of TensorFlow's ``padding="same"`` for one 1D layer.

    The output length is ``ceil(length / stride)``; the total padding
    ``max((out - 1) * stride + kernel_size - length, 0)`` is split with the odd point on the right.
    """
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel_size - length, 0)
    return total // 2, total - total // 2


class Conv1dSame(nn.Conv1d):
    """``nn.Conv1d`` with TensorFlow's "same" padding for any stride (output ``ceil(L / stride)``).

    Stride 1 with an odd kernel uses the convolution's own symmetric padding; otherwise the input is
    zero-padded in ``forward`` with the split given by :func:`same_padding`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 bias: bool = True) -> None:
        self._static = stride == 1 and kernel_size % 2 == 1
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=kernel_size // 2 if self._static else 0, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if not self._static:
            left, right = same_padding(x.shape[-1], self.kernel_size[0], self.stride[0])
            if left or right:
                x = F.pad(x, (left, right))
        return super().forward(x)


class MaxPool1dSame(nn.MaxPool1d):
    """``nn.MaxPool1d`` with TensorFlow's "same" padding (padded points never win the max)."""

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__(kernel_size, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        left, right = same_padding(x.shape[-1], self.kernel_size, self.stride)
        if left or right:
            x = F.pad(x, (left, right), value=float("-inf"))
        return super().forward(x)


def as_batch(x: Tensor, in_channels: int, input_length: int | None, model: str) -> Tensor:
    """Return ``x`` as (B, C, L): accepts (B, L) when ``in_channels == 1``, or (B, C, L).

    ``input_length`` is the length the model requires (None: any length). Raises ``ValueError``
    naming the received shape.
    """
    if x.dim() == 2 and in_channels == 1:
        x = x.unsqueeze(1)
    if x.dim() != 3 or x.shape[1] != in_channels:
        expected = f"(B, {in_channels}, L)" + (" or (B, L)" if in_channels == 1 else "")
        raise ValueError(f"{model}: expected an input of shape {expected}, got {tuple(x.shape)}")
    if input_length is not None and x.shape[-1] != input_length:
        raise ValueError(f"{model}: built for input_length={input_length} points (flatten head), "
                          f"got a pattern of {x.shape[-1]} points; rebuild with "
                          f"input_length={x.shape[-1]} or use head='pool'")
    return x


def _norm(channels: int, groups: int, eps: float) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=eps)


# --------------------------------------------------------------------------------------------
# Blocks


class BasicBlock1D(nn.Module):
    """Two ``kernel_size`` convolutions with a residual connection (He et al. 2016, Fig. 2 left).

    ``conv(stride) → GN → ReLU → conv → GN → (+ shortcut) → ReLU``; the stride sits on the first
    convolution. ``downsample`` is the projection shortcut (1×1 conv with the block's stride + GN).
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 *, kernel_size: int = 9, groups: int = NORM_GROUPS, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.conv1 = Conv1dSame(inplanes, planes, kernel_size, stride, bias=False)
        self.norm1 = _norm(planes, groups, eps)
        self.conv2 = Conv1dSame(planes, planes, kernel_size, 1, bias=False)
        self.norm2 = _norm(planes, groups, eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_norm(self) -> nn.GroupNorm:
        """The norm closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.norm2

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck1D(nn.Module):
    """1×1 reduce → ``kernel_size`` conv → 1×1 expand (×4), with a residual connection.

    The stride sits on the middle convolution (as in the reference's TF Model Garden block and
    torchvision's "ResNet v1.5"). Each convolution is followed by GroupNorm; ReLU after the first two
    and after the addition.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 *, kernel_size: int = 9, groups: int = NORM_GROUPS, eps: float = NORM_EPS) -> None:
        super().__init__()
        width = planes
        self.conv1 = nn.Conv1d(inplanes, width, 1, bias=False)
        self.norm1 = _norm(width, groups, eps)
        self.conv2 = Conv1dSame(width, width, kernel_size, stride, bias=False)
        self.norm2 = _norm(width, groups, eps)
        self.conv3 = nn.Conv1d(width, planes * self.expansion, 1, bias=False)
        self.norm3 = _norm(planes * self.expansion, groups, eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_norm(self) -> nn.GroupNorm:
        """The norm closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.norm3

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        return self.relu(out + identity)


Block = type[BasicBlock1D] | type[Bottleneck1D]


# --------------------------------------------------------------------------------------------
# Trunk


class ResNet1D(nn.Module):
    """1D ResNet classifier for powder patterns; input (B, L) or (B, in_channels, L), output logits.

    ============  ===========  =====================  =======================================
    registry      block        layers                 parameters (145 classes, 8501 points)
    ============  ===========  =====================  =======================================
    resnet10      basic        [1, 1, 1, 1]           9.40 M (flatten head), 5.07 M (pool head)
    resnet50      bottleneck   [3, 4, 6, 3]           41.36 M (flatten), 24.06 M (pool)
    resnet101     bottleneck   [3, 4, 23, 3]          60.35 M (flatten), 43.05 M (pool)
    ============  ===========  =====================  =======================================

    Parameters
    ----------
    block
        :class:`BasicBlock1D` or :class:`Bottleneck1D` (or a subclass with ``expansion``).
    layers
        Number of blocks per stage, one entry per stage (≥ 1 each).
    num_classes
        Number of output logits (≥ 1).
    input_length
        Pattern length in points. Fixes the flatten size of ``head="flatten"``; ignored by
        ``head="pool"`` except for the stored config.
    in_channels
        Input channels (1 for a single pattern).
    widths, strides
        Base width (before ``expansion``) and stride of each stage; reference 64/128/256/512 and
        1/4/4/4.
    kernel_size
        Kernel of the non-1×1 convolutions in the blocks (reference 9).
    stem_channels, stem_kernel_size
        Stem convolution (reference 64 channels, kernel 7, stride 2, then max-pool 3 stride 2).
    norm_groups, norm_eps
        GroupNorm groups (must divide every channel count) and epsilon.
    head
        ``"flatten"`` (reference: flatten → dense ``head_units`` → logits) or ``"pool"`` (global
        average pooling → dense ``head_units`` → activation → dropout → logits).
    head_units
        Width of the hidden dense layer (reference 256).
    head_activation
        ``"identity"``, ``"relu"`` or ``"gelu"`` after the hidden dense layer; None picks the
        default of the head: ``"identity"`` for ``"flatten"`` (the reference has none) and
        ``"gelu"`` for ``"pool"``.
    dropout
        Dropout probability before the logits layer (0 disables it).
    zero_init_residual
        Start every residual branch's last GroupNorm at γ = 0 (Goyal et al. 2017, arXiv 1706.02677).

    Raises
    ------
    ValueError
        (:class:`~synthxrd.errors.ConfigError`) for any invalid argument, naming the value received.
    """

    def __init__(self, block: Block, layers: Sequence[int], num_classes: int, input_length: int = 8501,
                 *, in_channels: int = 1, widths: Sequence[int] = (64, 128, 256, 512),
                 strides: Sequence[int] = (1, 4, 4, 4), kernel_size: int = 9, stem_channels: int = 64,
                 stem_kernel_size: int = 7, norm_groups: int = NORM_GROUPS, norm_eps: float = NORM_EPS,
                 head: str = "flatten", head_units: int = 256, head_activation: str | None = None,
                 dropout: float = 0.0, zero_init_residual: bool = False) -> None:
        super().__init__()
        _check_int("num_classes", num_classes, 1)
        _check_int("input_length", input_length, 1)
        _check_int("in_channels", in_channels, 1)
        _check_int("kernel_size", kernel_size, 1)
        _check_int("stem_channels", stem_channels, 1)
        _check_int("stem_kernel_size", stem_kernel_size, 1)
        _check_int("head_units", head_units, 1)
        _check_int("norm_groups", norm_groups, 1)
        if not (isinstance(block, type) and isinstance(getattr(block, "expansion", None), int)):
            raise ConfigError(f"block must be a block class with an integer 'expansion' "
                              f"(BasicBlock1D, Bottleneck1D), got {block!r}")
        layers, widths, strides = list(layers), list(widths), list(strides)
        if not layers or not len(layers) == len(widths) == len(strides):
            raise ConfigError(f"layers, widths and strides need one entry per stage (at least one), got "
                              f"layers={layers}, widths={widths}, strides={strides}")
        for what, values in (("layers", layers), ("widths", widths), ("strides", strides)):
            for v in values:
                _check_int(f"every entry of {what}", v, 1)
        if head not in HEADS:
            raise ConfigError(f"head must be one of {HEADS}, got {head!r}")
        if head_activation is None:
            head_activation = "identity" if head == "flatten" else "gelu"
        if head_activation not in HEAD_ACTIVATIONS:
            raise ConfigError(f"head_activation must be one of {HEAD_ACTIVATIONS} or None, "
                              f"got {head_activation!r}")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ConfigError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        channels = [stem_channels] + widths + [w * block.expansion for w in widths]
        bad = sorted({c for c in channels if c % norm_groups})
        if bad:
            raise ConfigError(f"norm_groups={norm_groups} must divide every channel count, "
                              f"but does not divide {bad}")

        self.in_channels = in_channels
        self.input_length = int(input_length)
        self.head_type = head
        self.config: dict | None = None  # set by synthxrd.models.build
        self._groups, self._eps, self._kernel_size = norm_groups, norm_eps, kernel_size

        self.stem = nn.Sequential(
            Conv1dSame(in_channels, stem_channels, stem_kernel_size, 2, bias=False),
            _norm(stem_channels, norm_groups, norm_eps),
            nn.ReLU(inplace=True),
            MaxPool1dSame(3, 2),
        )
        self.inplanes = stem_channels
        self.stages = nn.Sequential(*(self._make_layer(block, w, n, s)
                                      for w, n, s in zip(widths, layers, strides)))
        out_channels = self.inplanes

        # Feature-map length after the trunk: every "same" layer gives ceil(L / stride).
        length = -(-input_length // 2)
        length = -(-length // 2)
        for s in strides:
            length = -(-length // s)
        self.feature_length = length
        self.feature_channels = out_channels

        act = {"identity": nn.Identity, "relu": nn.ReLU, "gelu": nn.GELU}[head_activation]
        if head == "flatten":
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(out_channels * length, head_units), act(),
                                      nn.Dropout(dropout))
        else:
            self.head = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                                      nn.Linear(out_channels, head_units), act(), nn.Dropout(dropout))
        self.fc = nn.Linear(head_units, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock1D, Bottleneck1D)):
                    nn.init.zeros_(m.last_norm().weight)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """One stage: a first block with a projection shortcut, then ``blocks - 1`` identity blocks.

        As in the reference, the first block of *every* stage projects its shortcut (1×1 conv with
        the stage stride + GroupNorm), also when stride and width would allow an identity.
        """
        out = planes * block.expansion
        downsample = nn.Sequential(nn.Conv1d(self.inplanes, out, 1, stride=stride, bias=False),
                                   _norm(out, self._groups, self._eps))
        opts = dict(kernel_size=self._kernel_size, groups=self._groups, eps=self._eps)
        layers = [block(self.inplanes, planes, stride, downsample, **opts)]
        self.inplanes = out
        layers += [block(out, planes, 1, None, **opts) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """Trunk output, shape (B, feature_channels, feature_length)."""
        x = as_batch(x, self.in_channels, self.input_length if self.head_type == "flatten" else None,
                     type(self).__name__)
        return self.stages(self.stem(x))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) of patterns (B, L) or (B, in_channels, L)."""
        return self.fc(self.head(self.forward_features(x)))


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


# --------------------------------------------------------------------------------------------
# Registered depths


def _resnet(block: Block, layers: list[int], num_classes: int, input_length: int, **kwargs) -> ResNet1D:
    return ResNet1D(block, layers, num_classes, input_length, **kwargs)


@register_model
def resnet10(num_classes: int, *, input_length: int = 8501, head: str = "flatten",
             head_activation: str | None = None, dropout: float = 0.0,
             zero_init_residual: bool = False) -> ResNet1D:
    """ResNet-10 (basic blocks [1, 1, 1, 1]) of Schopmans et al. 2023 (arXiv 2303.11699); 9.4 M
    parameters with the reference flatten head (145 classes, 8501 points). See :class:`ResNet1D`."""
    return _resnet(BasicBlock1D, [1, 1, 1, 1], num_classes, input_length, head=head,
                   head_activation=head_activation, dropout=dropout, zero_init_residual=zero_init_residual)


@register_model
def resnet50(num_classes: int, *, input_length: int = 8501, head: str = "flatten",
             head_activation: str | None = None, dropout: float = 0.0,
             zero_init_residual: bool = False) -> ResNet1D:
    """ResNet-50 (bottlenecks [3, 4, 6, 3]) of Schopmans et al. 2023 (arXiv 2303.11699); 41.4 M
    parameters with the reference flatten head (145 classes, 8501 points). See :class:`ResNet1D`."""
    return _resnet(Bottleneck1D, [3, 4, 6, 3], num_classes, input_length, head=head,
                   head_activation=head_activation, dropout=dropout, zero_init_residual=zero_init_residual)


@register_model
def resnet101(num_classes: int, *, input_length: int = 8501, head: str = "flatten",
              head_activation: str | None = None, dropout: float = 0.0,
              zero_init_residual: bool = False) -> ResNet1D:
    """ResNet-101 (bottlenecks [3, 4, 23, 3]), the paper's best network (79.9 % top-1 on unseen ICSD
    structure types; Schopmans et al. 2023, arXiv 2303.11699); 60.4 M parameters with the reference
    flatten head (145 classes, 8501 points). See :class:`ResNet1D`."""
    return _resnet(Bottleneck1D, [3, 4, 23, 3], num_classes, input_length, head=head,
                   head_activation=head_activation, dropout=dropout, zero_init_residual=zero_init_residual)


@register_model
def resnet10_pool(num_classes: int, *, input_length: int = 8501, head_activation: str | None = "gelu",
                  dropout: float = 0.0, zero_init_residual: bool = False) -> ResNet1D:
    """ResNet-10 with the global-average-pooling head (any input length; 4.3 M fewer parameters)."""
    return _resnet(BasicBlock1D, [1, 1, 1, 1], num_classes, input_length, head="pool",
                   head_activation=head_activation, dropout=dropout, zero_init_residual=zero_init_residual)


@register_model
def resnet50_pool(num_classes: int, *, input_length: int = 8501, head_activation: str | None = "gelu",
                  dropout: float = 0.0, zero_init_residual: bool = False) -> ResNet1D:
    """ResNet-50 with the global-average-pooling head (any input length; 17.3 M fewer parameters)."""
    return _resnet(Bottleneck1D, [3, 4, 6, 3], num_classes, input_length, head="pool",
                   head_activation=head_activation, dropout=dropout, zero_init_residual=zero_init_residual)


@register_model
def resnet101_pool(num_classes: int, *, input_length: int = 8501, head_activation: str | None = "gelu",
                   dropout: float = 0.0, zero_init_residual: bool = False) -> ResNet1D:
    """ResNet-101 with the global-average-pooling head (any input length; 17.3 M fewer parameters)."""
    return _resnet(Bottleneck1D, [3, 4, 23, 3], num_classes, input_length, head="pool",
                   head_activation=head_activation, dropout=dropout, zero_init_residual=zero_init_residual)

