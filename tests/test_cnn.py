"""CNN encoders (MobileNetV2, EfficientNet-Lite) and the torch-free checkpoint reader.

The second implementation trusted here is a torch.nn one written below with exactly the state-dict
names of torchvision's ``mobilenet_v2`` and timm's ``efficientnet_lite*``: randomly initialised,
saved with ``torch.save``, then read by ``torchvision_cnn.load`` in a subprocess where importing
torch fails, and compared in eval mode.
"""

import functools
import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from flax import nnx

from visual_priors.model import cnn, encoders
from visual_priors.model.convert import torch_pickle, torchvision_cnn

SIZE = 64  # input pixels in the comparisons: small, and even, so TF "SAME" padding is asymmetric


# ---------------------------------------------------------------- torch reference models


def _round8(v):
    """Channel rounding of torchvision/timm: nearest multiple of 8, never 10% below v."""
    r = max(8, int(v + 4) // 8 * 8)
    return r + 8 if r < 0.9 * v else r


@functools.cache
def torch_reference():
    """(MobileNetV2, EfficientNetLite) torch.nn classes with torchvision / timm tensor names.

    ``forward`` returns (logits, maps) with maps = [stem, end of each of the 7 stages, head]."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class SameConv2d(nn.Conv2d):
        """TF "SAME": pad to ceil(n / stride) outputs, the odd pixel at the end (timm Conv2dSame)."""

        def forward(self, x):
            pads = []
            for n, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1]):
                total = max((math.ceil(n / s) - 1) * s + k - n, 0)
                pads += [total // 2, total - total // 2]
            return super().forward(F.pad(x, pads))

    def conv(cin, cout, k, stride=1, groups=1, same=False):
        if same:
            return SameConv2d(cin, cout, k, stride, 0, groups=groups, bias=False)
        return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)

    class ConvBNReLU(nn.Sequential):  # torchvision's Conv2dNormActivation: .0 conv, .1 bn
        def __init__(self, cin, cout, k, stride=1, groups=1):
            super().__init__(conv(cin, cout, k, stride, groups), nn.BatchNorm2d(cout), nn.ReLU6())

    class TVInvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, t):
            super().__init__()
            hidden = int(round(cin * t))
            layers = [ConvBNReLU(cin, hidden, 1)] if t != 1 else []
            layers += [ConvBNReLU(hidden, hidden, 3, stride, hidden), conv(hidden, cout, 1), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)
            self.skip = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.skip else self.conv(x)

    class MobileNetV2(nn.Module):
        setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                   (6, 160, 3, 2), (6, 320, 1, 1)]

        def __init__(self, width=1.0, num_classes=1000):
            super().__init__()
            cin, last = _round8(32 * width), _round8(1280 * max(1.0, width))
            features, self.ends = [ConvBNReLU(3, cin, 3, 2)], []
            for t, c, n, s in self.setting:
                for i in range(n):
                    features.append(TVInvertedResidual(cin, _round8(c * width), s if i == 0 else 1, t))
                    cin = _round8(c * width)
                self.ends.append(len(features) - 1)
            features.append(ConvBNReLU(cin, last, 1))
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

        def forward(self, x):
            maps = []
            for i, layer in enumerate(self.features):
                x = layer(x)
                if i == 0 or i in self.ends or i == len(self.features) - 1:
                    maps.append(x)
            return self.classifier(x.mean((2, 3))), maps

    class DepthwiseSeparable(nn.Module):  # timm DepthwiseSeparableConv
        def __init__(self, cin, cout, k, stride, eps, same):
            super().__init__()
            self.conv_dw = conv(cin, cin, k, stride, cin, same)
            self.bn1 = nn.BatchNorm2d(cin, eps=eps)
            self.conv_pw = conv(cin, cout, 1)
            self.bn2 = nn.BatchNorm2d(cout, eps=eps)
            self.skip = stride == 1 and cin == cout

        def forward(self, x):
            y = self.bn2(self.conv_pw(F.relu6(self.bn1(self.conv_dw(x)))))
            return x + y if self.skip else y

    class TimmInvertedResidual(nn.Module):  # timm InvertedResidual without squeeze-excite
        def __init__(self, cin, cout, k, stride, t, eps, same):
            super().__init__()
            mid = _round8(cin * t)
            self.conv_pw, self.bn1 = conv(cin, mid, 1), nn.BatchNorm2d(mid, eps=eps)
            self.conv_dw, self.bn2 = conv(mid, mid, k, stride, mid, same), nn.BatchNorm2d(mid, eps=eps)
            self.conv_pwl, self.bn3 = conv(mid, cout, 1), nn.BatchNorm2d(cout, eps=eps)
            self.skip = stride == 1 and cin == cout

        def forward(self, x):
            y = F.relu6(self.bn1(self.conv_pw(x)))
            y = self.bn3(self.conv_pwl(F.relu6(self.bn2(self.conv_dw(y)))))
            return x + y if self.skip else y

    class EfficientNetLite(nn.Module):
        # timm's arch strings ds_r1_k3_s1_e1_c16, ir_r2_k3_s2_e6_c24, ...: (repeats, k, s, e, c)
        arch = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]

        def __init__(self, width=1.0, depth=1.0, tf=False, num_classes=1000):
            super().__init__()
            eps = 1e-3 if tf else 1e-5
            self.conv_stem, self.bn1 = conv(3, 32, 3, 2, same=tf), nn.BatchNorm2d(32, eps=eps)
            stages, cin = [], 32
            for i, (r, k, s, e, c) in enumerate(self.arch):
                r = r if i in (0, len(self.arch) - 1) else math.ceil(r * depth)  # stem/head stages fixed
                cout, blocks = _round8(c * width), []
                for j in range(r):
                    stride = s if j == 0 else 1
                    blocks.append(DepthwiseSeparable(cin, cout, k, stride, eps, tf) if e == 1
                                  else TimmInvertedResidual(cin, cout, k, stride, e, eps, tf))
                    cin = cout
                stages.append(nn.Sequential(*blocks))
            self.blocks = nn.Sequential(*stages)
            self.conv_head, self.bn2 = conv(cin, 1280, 1), nn.BatchNorm2d(1280, eps=eps)
            self.classifier = nn.Linear(1280, num_classes)

        def forward(self, x):
            x = F.relu6(self.bn1(self.conv_stem(x)))
            maps = [x]
            for stage in self.blocks:
                x = stage(x)
                maps.append(x)
            x = F.relu6(self.bn2(self.conv_head(x)))
            maps.append(x)
            return self.classifier(x.mean((2, 3))), maps

    return MobileNetV2, EfficientNetLite


def randomised(model, seed=0):
    """Running statistics from a real batch (so activations stay O(1) through the depth), then
    every BN tensor perturbed so that no statistic is the identity; eval mode."""
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # cumulative average: one batch sets the statistics exactly
        model.train()
        model(torch.randn(8, 3, SIZE, SIZE, generator=gen))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_mean.add_(0.05 * torch.randn(n, generator=gen))
                m.running_var.mul_(0.8 + 0.4 * torch.rand(n, generator=gen))
    return model.eval()


# (arch, overrides for our loader, reference constructor arguments). Each costs a compilation
# (~2 s); other widths and depths differ only in layout, checked name by name further down.
CASES = {
    "mobilenet_v2": ("mobilenet_v2", {}, ("mbv2", dict(width=1.0))),
    "efficientnet_lite0": ("efficientnet_lite0", {}, ("lite", dict())),
    "tf_efficientnet_lite0": ("tf_efficientnet_lite0", {}, ("lite", dict(tf=True))),
}

# Loads every case's checkpoint with torch unimportable and writes what the model computes.
_NO_TORCH_SCRIPT = """
import json, sys
sys.modules["torch"] = None  # from here on, "import torch" raises ImportError
import numpy as np
from flax import nnx
from visual_priors.model.convert import torchvision_cnn
for job in json.loads(sys.argv[1]):
    model = torchvision_cnn.load(job["path"], job["arch"], image_size=job["size"], **job["overrides"])
    out, logits, maps = nnx.jit(lambda m, x: (m(x), m.logits(x), m.feature_maps(x)))(model, np.load(job["x"]))
    np.savez(job["out"], tokens=out["tokens"], pooled=out["pooled"], logits=logits,
             **{f"map{i}": m for i, m in enumerate(maps)})
assert sys.modules["torch"] is None
"""


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Per case: the checkpoint, the input, torch's outputs and ours (computed without torch)."""
    torch = pytest.importorskip("torch")
    MobileNetV2, EfficientNetLite = torch_reference()
    tmp = tmp_path_factory.mktemp("cnn")
    rng = np.random.default_rng(0)
    jobs, refs = [], {}
    for i, (case, (arch, overrides, (kind, kwargs))) in enumerate(CASES.items()):
        torch.manual_seed(i)
        model = randomised((MobileNetV2 if kind == "mbv2" else EfficientNetLite)(**kwargs), seed=i)
        torch.save(model.state_dict(), tmp / f"{case}.pth")
        x = rng.normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)  # already normalised
        np.save(tmp / f"{case}-x.npy", x)
        with torch.no_grad():
            logits, maps = model(torch.from_numpy(x).permute(0, 3, 1, 2))
        refs[case] = dict(logits=logits.numpy(), **{f"map{j}": m.permute(0, 2, 3, 1).numpy() for j, m in enumerate(maps)})
        jobs.append(dict(path=str(tmp / f"{case}.pth"), arch=arch, size=SIZE, overrides=overrides,
                         x=str(tmp / f"{case}-x.npy"), out=str(tmp / f"{case}-out.npz")))
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH_SCRIPT, json.dumps(jobs)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {case: dict(path=job["path"], x=np.load(job["x"]), ref=refs[case], ours=dict(np.load(job["out"])))
            for case, job in zip(CASES, jobs)}


def assert_close(ours, ref, what):
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


# ---------------------------------------------------------------- comparisons with torch


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_reference_without_torch(compared, case):
    ref, ours = compared[case]["ref"], compared[case]["ours"]
    for i in range(9):  # stem, the 7 stage ends, head
        assert ours[f"map{i}"].shape == ref[f"map{i}"].shape, i
        assert_close(ours[f"map{i}"], ref[f"map{i}"], f"{case} map {i}")
    assert "map9" not in ours and "map9" not in ref
    assert_close(ours["logits"], ref["logits"], f"{case} logits")
    b, h, w, c = ref["map8"].shape
    assert_close(ours["tokens"], ref["map8"].reshape(b, h * w, c), f"{case} tokens")
    assert_close(ours["pooled"], ref["map8"].mean(axis=(1, 2)), f"{case} pooled")
    # The comparison means something only if the features are neither saturated nor vanishing.
    assert ref["map8"].std() > 0.05 and (ref["map8"] < 6).mean() > 0.5


def test_tf_padding_is_live(compared):
    """The TF port read with symmetric padding (timm's PyTorch-trained setting) computes
    something else from the stem on: the flag telling the two apart matters."""
    case = compared["tf_efficientnet_lite0"]
    for padding, match in (("same", True), ("symmetric", False)):
        model = torchvision_cnn.load(case["path"], "tf_efficientnet_lite0", image_size=SIZE, padding=padding)
        stem = np.asarray(nnx.jit(lambda m, x: m.stem(m.preprocess(x)))(model, case["x"]))
        assert np.allclose(stem, case["ref"]["map0"], rtol=1e-4, atol=1e-4) == match, padding


def test_uint8_images_are_scaled_and_normalised():
    for arch in ("mobilenet_v2", "tf_efficientnet_lite0"):
        cfg = torchvision_cnn.config(arch, image_size=SIZE)
        model = nnx.eval_shape(lambda: cnn.build(cfg, rngs=nnx.Rngs(0)))  # preprocessing needs no weights
        x = np.random.default_rng(1).integers(0, 256, size=(2, SIZE, SIZE, 3), dtype=np.uint8)
        want = (x / 255.0 - np.array(cfg.mean)) / np.array(cfg.std)
        np.testing.assert_allclose(np.asarray(model.preprocess(x)), want, rtol=1e-6, atol=1e-6)
    assert cnn.cnn_config("tf_efficientnet_lite0").mean == (0.5, 0.5, 0.5)


# ---------------------------------------------------------------- layouts


LAYOUTS = [(arch, 1.0) for arch in cnn.CNN_NAMES] + [("mobilenet_v2", 0.35), ("mobilenet_v2", 1.4),
                                                       ("efficientnet_lite2", 0.5), ("efficientnet_lite4", 0.3)]


@pytest.mark.parametrize("arch,width", LAYOUTS)
def test_layout_matches_reference_state_dict(arch, width):
    """Every tensor name and shape of the torch reference, without running it (``width``
    scales the arch's own width multiplier)."""
    torch = pytest.importorskip("torch")
    MobileNetV2, EfficientNetLite = torch_reference()
    cfg = cnn.cnn_config(arch)
    cfg.width_mult *= width
    with torch.device("meta"):  # shapes only: nothing allocated or initialised
        if arch == "mobilenet_v2":
            ref = MobileNetV2(cfg.width_mult)
        else:
            ref = EfficientNetLite(cfg.width_mult, cfg.depth_mult, tf=arch.startswith("tf_"))
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert torchvision_cnn.expected_torch_shapes(cfg) == want


# Published parameter counts: torchvision's MobileNetV2 exactly; the TF EfficientNet-Lite README
# (4.7M, 5.4M, 6.1M, 8.2M, 13.0M) to the 0.1M it gives.
PUBLISHED = {"mobilenet_v2": (3_504_872, 0), "efficientnet_lite0": (4.7e6, 5e4), "efficientnet_lite1": (5.4e6, 5e4),
             "efficientnet_lite2": (6.1e6, 5e4), "efficientnet_lite3": (8.2e6, 5e4),
             "efficientnet_lite4": (13.0e6, 5e4)}


@pytest.mark.parametrize("arch", PUBLISHED)
def test_parameter_counts_match_published(arch):
    model = nnx.eval_shape(lambda: cnn.build(cnn.cnn_config(arch), rngs=nnx.Rngs(0)))
    flat = jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param).to_pure_dict())[0]
    # torch counts BatchNorm statistics as buffers, not parameters.
    count = sum(math.prod(v.shape) for path, v in flat if path[-1].key not in ("mean", "var"))
    want, tol = PUBLISHED[arch]
    assert abs(count - want) <= tol, count


def test_token_counts_and_feature_layers():
    cfg = cnn.cnn_config("mobilenet_v2")
    model = nnx.eval_shape(lambda: cnn.build(cfg, rngs=nnx.Rngs(0)))
    assert (model.grid_size, model.num_tokens(), model.num_tokens(500), model.width) == ((7, 7), 49, 49, 1280)
    assert cnn.feature_grid(cfg, 64) == (2, 2) and cnn.feature_grid(cfg, 65) == (3, 3)
    assert [cnn.feature_grid(cnn.cnn_config(f"efficientnet_lite{i}"))[0] for i in range(5)] == [7, 8, 9, 9, 10]
    # Earlier layers: their own grid, width and tokens, for any input size (inputs are resized).
    for layer, grid, width in ((0, 32, 32), (4, 4, 64), (-3, 2, 160), (8, 2, 1280)):
        small = cnn.cnn_config("mobilenet_v2")
        small.update(image_size=SIZE, feature_layer=layer)
        m = nnx.eval_shape(lambda: cnn.build(small, rngs=nnx.Rngs(0)))
        for size in (SIZE, 50):
            out = nnx.eval_shape(lambda model, x: model(x), m, jax.ShapeDtypeStruct((3, size, size, 3), jnp.uint8))
            assert out["tokens"].shape == (3, grid * grid, width) == (3, m.num_tokens(size), m.width)
            assert out["pooled"].shape == (3, 1280)
    bad = cnn.cnn_config("mobilenet_v2")
    bad.feature_layer = 9
    with pytest.raises(ValueError, match="feature_layer=9 outside the 9 feature maps"):
        cnn.build(bad, rngs=nnx.Rngs(0))


def test_resize_matches_torch_bilinear():
    """Images of another size are resized (bilinear, half-pixel centres, as torch's interpolate
    when enlarging) before the network."""
    torch = pytest.importorskip("torch")
    cfg = torchvision_cnn.config("mobilenet_v2", width_mult=0.35, image_size=SIZE)
    model = nnx.eval_shape(lambda: cnn.build(cfg, rngs=nnx.Rngs(0)))
    x = np.random.default_rng(2).integers(0, 256, size=(2, 40, 48, 3), dtype=np.uint8)
    normalised = ((x / 255.0 - np.array(cfg.mean)) / np.array(cfg.std)).astype(np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(normalised).permute(0, 3, 1, 2), size=(SIZE, SIZE),
                                           mode="bilinear", align_corners=False).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(model.preprocess(x)), want, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model.preprocess(jnp.asarray(want))), want)  # float: as is
    with pytest.raises(TypeError, match="uint8 or floating"):
        model.preprocess(x.astype(np.int32))


# ---------------------------------------------------------------- checkpoints and errors


@pytest.fixture(scope="module")
def small_mbv2(tmp_path_factory):
    """A narrow torchvision-layout MobileNetV2 state dict, saved, with its tensors."""
    torch = pytest.importorskip("torch")
    MobileNetV2, _ = torch_reference()
    torch.manual_seed(3)
    ref = randomised(MobileNetV2(width=0.35, num_classes=10), seed=3)
    path = tmp_path_factory.mktemp("mbv2") / "small.pth"
    torch.save(ref.state_dict(), path)
    return path, {k: v.numpy() for k, v in ref.state_dict().items()}


def params_of(model):
    return jax.tree.map(np.asarray, nnx.state(model, nnx.Param).to_pure_dict())


def test_import_checkpoint_round_trip(small_mbv2, tmp_path):
    path, _ = small_mbv2
    cfg = torchvision_cnn.import_checkpoint(path, "mobilenet_v2", tmp_path / "ckpt", width_mult=0.35,
                                            image_size=SIZE)
    assert cfg.num_classes == 10  # read from the classifier
    meta = json.loads((tmp_path / "ckpt" / "metadata.json").read_text())
    assert meta["kind"] == "cnn" and meta["arch"] == "mobilenet_v2" and meta["config"]["width_mult"] == 0.35
    direct = torchvision_cnn.load(path, "mobilenet_v2", width_mult=0.35, image_size=SIZE)
    saved = encoders.load_frozen(tmp_path / "ckpt")
    jax.tree.map(np.testing.assert_array_equal, params_of(saved), params_of(direct))
    assert encoders.load_frozen(tmp_path / "ckpt", feature_layer=2).width == 8


def test_nested_and_prefixed_state_dicts(small_mbv2, tmp_path):
    torch = pytest.importorskip("torch")
    import argparse
    path, tensors = small_mbv2
    sd = torch.load(path)
    training = {"epoch": 3, "args": argparse.Namespace(lr=0.1), "state_dict": sd,
                "state_dict_ema": {k: v + 1 for k, v in sd.items()}}
    torch.save(training, tmp_path / "train.pth.tar")
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pth")
    kw = dict(width_mult=0.35, image_size=SIZE)
    want = params_of(torchvision_cnn.load(path, "mobilenet_v2", **kw))
    for file, key, shift in (("train.pth.tar", None, 0), ("train.pth.tar", "state_dict_ema", 1), ("ddp.pth", None, 0)):
        got = params_of(torchvision_cnn.load(tmp_path / file, "mobilenet_v2", key=key, **kw))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b + shift, rtol=1e-6), got, want)
    assert isinstance(torch_pickle.read(tmp_path / "train.pth.tar")["args"], torch_pickle.Opaque)
    with pytest.raises(torch_pickle.TorchPickleError, match="no entry 'ema'.*epoch, args, state_dict"):
        torch_pickle.load_state_dict(tmp_path / "train.pth.tar", key="ema")
    torch.save({"args": argparse.Namespace(), "step": 1}, tmp_path / "none.pth")
    with pytest.raises(torch_pickle.TorchPickleError, match="not tensors: args .argparse.Namespace.*pass key="):
        torch_pickle.load_state_dict(tmp_path / "none.pth")


def test_state_dict_errors_name_the_tensor(small_mbv2, tmp_path):
    torch = pytest.importorskip("torch")
    path, tensors = small_mbv2
    kw = dict(width_mult=0.35, image_size=SIZE)
    with pytest.raises(ValueError, match="unknown arch 'resnet50'; valid: mobilenet_v2, efficientnet_lite0"):
        torchvision_cnn.load(path, "resnet50")
    with pytest.raises(ValueError, match="unknown config fields \\['widht'\\]"):
        torchvision_cnn.load(path, "mobilenet_v2", widht=0.35)
    sd = {k: torch.from_numpy(v) for k, v in tensors.items()}
    cases = {
        "missing": ({k: v for k, v in sd.items() if k != "features.5.conv.1.1.running_var"},
                    "missing tensors: features.5.conv.1.1.running_var"),
        "shape": ({**sd, "features.3.conv.2.weight": sd["features.3.conv.2.weight"][:, :-1]},
                  r"tensor features.3.conv.2.weight in .*shape.pth has shape \(8, 47, 1, 1\).*expects \(8, 48, 1, 1\)"),
        "unexpected": ({**sd, "features.99.weight": sd["classifier.1.bias"]}, "unexpected tensors: features.99.weight"),
        "headless": ({k: v for k, v in sd.items() if not k.startswith("classifier")},
                     "missing tensors: classifier.1.weight, classifier.1.bias; .*pass num_classes=0"),
    }
    for name, (state, message) in cases.items():
        torch.save(state, tmp_path / f"{name}.pth")
        with pytest.raises(ValueError, match=message):
            torchvision_cnn.load(tmp_path / f"{name}.pth", "mobilenet_v2", **kw)
    # The right tensors for another width: the first misfit is named.
    with pytest.raises(ValueError, match=r"tensor features.0.0.weight .* has shape \(16, 3, 3, 3\)"
                                         r".*width_mult=1.0 expects \(32, 3, 3, 3\)"):
        torchvision_cnn.load(path, "mobilenet_v2")
    headless = torchvision_cnn.load(tmp_path / "headless.pth", "mobilenet_v2", num_classes=0, **kw)
    with pytest.raises(ValueError, match="no classifier"):
        headless.logits(np.zeros((1, SIZE, SIZE, 3), np.uint8))


# ---------------------------------------------------------------- the torch pickle reader


def test_reader_round_trips_dtypes_views_and_shared_storage(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10) / 7
    tensors = {
        "f32": base,
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "f64": base.double(),
        "i64": torch.arange(-5, 7, dtype=torch.int64) * 2**40,
        "i32": torch.arange(12, dtype=torch.int32) - 6,
        "i16": torch.arange(12, dtype=torch.int16),
        "i8": torch.arange(-6, 6, dtype=torch.int8),
        "u8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "transposed": base.t(),                  # non-contiguous
        "strided": base[1:5:2, 3::3],            # offset and strides into base's storage
        "expanded": torch.ones(3).expand(4, 3),  # stride 0
        "tied": base,                            # the same tensor twice
        "param": torch.nn.Parameter(base[2]),
        "bf16_view": base.bfloat16()[::2, 1:4],
    }
    torch.save(tensors, tmp_path / "t.pt")
    got = torch_pickle.load_state_dict(tmp_path / "t.pt")
    assert list(got) == list(tensors)
    for name, t in tensors.items():
        t = t.detach()
        want = t.float().numpy().astype(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else t.numpy()
        assert got[name].dtype == want.dtype and got[name].shape == want.shape, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)
        assert got[name].flags.c_contiguous and got[name].flags.owndata, name
    # One tensor saved under two names comes back as one array (torch.load gives one tensor);
    # views of one storage come back as arrays of their own.
    assert got["tied"] is got["f32"]
    got["f32"][0, 0] = -1
    assert got["transposed"][0, 0] == 0 and got["strided"].base is None


def test_reader_big_endian_archive(tmp_path):
    """Archives written on big-endian machines say so in their ``byteorder`` record."""
    torch = pytest.importorskip("torch")
    import zipfile
    t = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2.5, "n": torch.arange(3)}
    torch.save(t, tmp_path / "le.pt")
    with zipfile.ZipFile(tmp_path / "le.pt") as src, zipfile.ZipFile(tmp_path / "be.pt", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename and not info.filename.endswith("serialization_id"):
                itemsize = 4 if info.filename.endswith("/0") else 8
                data = np.frombuffer(data, f"<u{itemsize}").astype(f">u{itemsize}").tobytes()
            dst.writestr(info, data)
    got = torch_pickle.load_state_dict(tmp_path / "be.pt")
    np.testing.assert_array_equal(got["w"], t["w"].numpy())
    np.testing.assert_array_equal(got["n"], t["n"].numpy())


def test_reader_errors_name_the_file(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(100)}, tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pt").write_text("hello, not a checkpoint\n")
    torch.save({"w": torch.ones(3)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    torch.save(torch.ones(2), tmp_path / "tensor.pt")
    np.savez(tmp_path / "arrays.npz", w=np.ones(2))
    expected = {
        "truncated.pt": "truncated.pt: truncated or corrupt",
        "text.pt": "text.pt: not a torch checkpoint",
        "legacy.pt": "legacy.pt is in torch's legacy .non-zip. serialization format.*re-save it with torch >= 1.6",
        "module.pt": "module.pt holds a pickled torch.nn.modules.linear.Linear object.*model.state_dict",
        "tensor.pt": "tensor.pt holds a tensor float32\\[2\\], not a state dict",
        "arrays.npz": "arrays.npz is a zip archive but not a torch checkpoint",
    }
    for name, message in expected.items():
        with pytest.raises(torch_pickle.TorchPickleError, match=message):
            torch_pickle.load_state_dict(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        torch_pickle.read(tmp_path / "absent.pt")


def test_reader_executes_nothing(tmp_path):
    """A pickle naming arbitrary callables gets inert records: nothing is imported or run."""
    torch = pytest.importorskip("torch")
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (print, ("side effect",))

    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as src, zipfile.ZipFile(tmp_path / "evil.pt", "w") as dst:
        for info in src.infolist():
            data = pickle.dumps({"x": Evil()}, protocol=2) if info.filename.endswith("data.pkl") else src.read(info)
            dst.writestr(info, data)
    obj = torch_pickle.read(tmp_path / "evil.pt")
    assert isinstance(obj["x"], torch_pickle.Opaque) and obj["x"].qualname.endswith(".print")
    assert obj["x"].args == ("side effect",)


def test_archs_table():
    assert tuple(a for a, _ in torchvision_cnn.ARCHS) == cnn.CNN_NAMES
    assert all(desc and "\n" not in desc for _, desc in torchvision_cnn.ARCHS)
    with pytest.raises(ValueError, match="unknown CNN 'vgg16'"):
        cnn.cnn_config("vgg16")
