"""The architecture gallery (issue #25): seven common architectures (eight entries: the LSTM/GRU model also
at a fixed length), defined here at tiny size with random seeded weights (no downloads), each with the hooks
`edgekit` reads (example_inputs, input/output names, dynamic_shapes where the architecture is used that way).
`edgekit export tests/gallery/models.py:vit` works like any user file; tests/gallery/gallery.py runs every
step of the pipeline on each of them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

SIZE = 32  # image side of the vision models


class GalleryModel(nn.Module):
    """Base: the example input comes from `example_shape`, eval mode, seeded weights."""

    input_names = ("x",)
    output_names = ("y",)
    example_shape: tuple = ()
    dynamic: dict = {}

    def example_inputs(self):
        return (torch.randn(*self.example_shape, generator=torch.Generator().manual_seed(0)),)

    def dynamic_shapes(self):
        return {"x": dict(self.dynamic)} if self.dynamic else {}


def _bn_act(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         act())


# --- ResNet-18: BasicBlocks [2, 2, 2, 2], projection shortcuts, global pool, fc --------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = _bn_act(cin, cout, 3, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + self.down(x))


class ResNet18(GalleryModel):
    example_shape = (1, 3, SIZE, SIZE)

    def __init__(self, width=8, classes=10):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = nn.Sequential(_bn_act(3, width, 7, 2), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], width
        for i, w in enumerate(widths):
            blocks += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


# --- MobileNetV3 (small): depthwise convs, hard-swish, squeeze-excite with hard-sigmoid ----------------
class SqueezeExcite(nn.Module):
    def __init__(self, channels, reduced):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, reduced, 1), nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        scale = F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * scale


class InvertedResidual(nn.Module):
    def __init__(self, cin, hidden, cout, k, stride, se, act):
        super().__init__()
        layers = [] if hidden == cin else [_bn_act(cin, hidden, 1, act=act)]
        layers += [_bn_act(hidden, hidden, k, stride, groups=hidden, act=act)]
        layers += [SqueezeExcite(hidden, max(8, hidden // 4))] if se else []
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV3(GalleryModel):
    example_shape = (1, 3, SIZE, SIZE)
    # (kernel, hidden, out, squeeze-excite, activation, stride): mobilenet_v3_small's table at ~1/4 width
    CONFIG = [(3, 8, 8, True, nn.ReLU, 2), (3, 24, 8, False, nn.ReLU, 2), (3, 24, 8, False, nn.ReLU, 1),
              (5, 24, 16, True, nn.Hardswish, 2), (5, 64, 16, True, nn.Hardswish, 1),
              (5, 32, 16, True, nn.Hardswish, 1), (5, 48, 24, True, nn.Hardswish, 2)]

    def __init__(self, classes=10):
        super().__init__()
        layers, cin = [_bn_act(3, 8, 3, 2, act=nn.Hardswish)], 8
        for k, hidden, cout, se, act, stride in self.CONFIG:
            layers.append(InvertedResidual(cin, hidden, cout, k, stride, se, act))
            cin = cout
        layers.append(_bn_act(cin, 6 * cin, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(6 * cin, 64), nn.Hardswish(), nn.Linear(64, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# --- ViT: patch embedding, class token, pre-norm blocks (multi-head attention, LayerNorm, GELU MLP) ----
class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class VitBlock(nn.Module):
    def __init__(self, dim, heads, mlp=2):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp * dim), nn.GELU(), nn.Linear(mlp * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(GalleryModel):
    example_shape = (1, 3, SIZE, SIZE)

    def __init__(self, patch=8, dim=32, depth=2, heads=2, classes=10):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, (SIZE // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[VitBlock(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos
        return self.head(self.norm(self.blocks(tokens))[:, 0])


# --- U-Net: two down-samplings, transposed-conv up-sampling, skip concatenation; any H, W divisible by 4 -
class UNet(GalleryModel):
    example_shape = (1, 3, SIZE, SIZE)
    dynamic = {2: "height", 3: "width"}

    def __init__(self, width=8, out_channels=1):
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(_bn_act(3, w), _bn_act(w, w))
        self.enc2 = nn.Sequential(_bn_act(w, 2 * w), _bn_act(2 * w, 2 * w))
        self.mid = nn.Sequential(_bn_act(2 * w, 4 * w), _bn_act(4 * w, 4 * w))
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, 2), nn.Sequential(_bn_act(4 * w, 2 * w))
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * w, w, 2, 2), nn.Sequential(_bn_act(2 * w, w))
        self.out = nn.Conv2d(w, out_channels, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        return self.out(self.dec1(torch.cat([self.up1(d2), e1], dim=1)))


# --- Sequence model: LSTM then GRU over feature frames, a linear head per frame; any length -------------
class RecurrentTagger(GalleryModel):
    example_shape = (1, 12, 8)  # batch, time, features
    dynamic = {1: "time"}

    def __init__(self, features=8, hidden=16, classes=4):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        h, _ = self.lstm(x)
        h, _ = self.gru(h)
        return self.head(h)


# --- 1-D conv audio classifier (M5-style): strided conv front end on the waveform, BN, pooling ---------
class AudioConv1d(GalleryModel):
    example_shape = (1, 1, 4000)  # batch, channel, samples (0.25 s at 16 kHz)
    dynamic = {2: "samples"}

    def __init__(self, width=8, classes=10):
        super().__init__()
        w = width

        def block(cin, cout, k, stride=1):
            return nn.Sequential(nn.Conv1d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU(),
                                 nn.MaxPool1d(4))

        self.features = nn.Sequential(block(1, w, 80, 16), block(w, 2 * w, 3), block(2 * w, 4 * w, 3))
        self.head = nn.Linear(4 * w, classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=2))


# --- Transformer encoder (nn.TransformerEncoder, GELU, pre-norm) over a dynamic sequence length ---------
class SequenceEncoder(GalleryModel):
    example_shape = (1, 16, 32)  # batch, tokens, features
    dynamic = {1: "seq"}

    def __init__(self, dim=32, heads=2, depth=2, classes=4):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        return self.head(self.encoder(x))


def _built(cls, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = cls(**kwargs).eval()
    with torch.no_grad():  # BatchNorm statistics away from (0, 1), so folding them is not a no-op
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def resnet18():
    return _built(ResNet18)


def mobilenetv3():
    return _built(MobileNetV3)


def vit():
    return _built(ViT)


def unet():
    return _built(UNet)


def lstm_gru():
    return _built(RecurrentTagger)


def lstm_gru_fixed():
    """The same tagger exported for one sequence length (no dynamic time)."""
    model = _built(RecurrentTagger)
    model.dynamic = {}
    return model


def audio_conv1d():
    return _built(AudioConv1d)


def transformer():
    return _built(SequenceEncoder)


# name → (factory, what it exercises); the driver runs them in this order
GALLERY = {
    "resnet18": (resnet18, "ResNet-18: residual BasicBlocks, projection shortcuts, max-pool"),
    "mobilenetv3": (mobilenetv3, "MobileNetV3-small: depthwise convs, hard-swish, squeeze-excite"),
    "vit": (vit, "ViT: patch embedding, class token, multi-head attention, LayerNorm, GELU"),
    "unet": (unet, "U-Net: skip concatenation, transposed convs, dynamic height × width"),
    "lstm_gru": (lstm_gru, "LSTM + GRU sequence tagger, dynamic time"),
    "lstm_gru_fixed": (lstm_gru_fixed, "the same LSTM + GRU tagger at a fixed length (12 frames)"),
    "audio_conv1d": (audio_conv1d, "1-D conv audio classifier (M5-style), dynamic samples"),
    "transformer": (transformer, "nn.TransformerEncoder (pre-norm, GELU), dynamic sequence length"),
}
