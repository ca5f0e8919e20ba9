"""Tests of adkit.features: offline ImageNet weights, shapes, conventions, errors."""
import time

import numpy as np
import pytest
import timm
import torch
from skimage import data
from skimage.util import img_as_float32

import adkit.features as af
from adkit.features import (FeatureExtractor, WeightsUnavailableError, classify,
                            extract_features, feature_size, imagenet_class_name,
                            load_backbone)

torch.set_num_threads(2)

CAT_CLASSES = {281, 282, 283, 284, 285, 286, 287}  # tabby ... lynx
LITE0_CHANNELS = {2: 16, 4: 24, 8: 40, 16: 112, 32: 320}


STRIDES = (4, 8, 16, 32)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((3, 64, 96, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def feats(images):
    return extract_features(images, strides=STRIDES, batch_size=2)


# --- the weights are ImageNet's --------------------------------------------------
def test_all_296_tensors_are_mapped_and_loaded():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    assert af._map_lite0_weights(model) == 296
    source = torch.load(af._lite0_checkpoint_path(), map_location="cpu", weights_only=True)
    # the positional mapping put the checkpoint's first and last tensors in place
    assert torch.equal(model.conv_stem.weight, source["_conv_stem.weight"])
    assert torch.equal(model.classifier.weight, source["_fc.weight"])
    # the cached backbone holds the same weights
    cached = load_backbone(device="cpu")
    assert torch.equal(cached.classifier.bias, source["_fc.bias"])


def test_mapping_into_a_different_architecture_fails_loudly():
    other = timm.create_model("tf_efficientnet_lite1", pretrained=False)  # other depth and widths
    with pytest.raises(RuntimeError, match="does not fit|tensors"):
        af._map_lite0_weights(other)


def test_classify_chelsea_is_a_cat():
    top5 = classify(img_as_float32(data.chelsea()), top=5)
    assert len(top5) == 5
    probs = [p for _, p in top5]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-5
    assert CAT_CLASSES & {i for i, _ in top5}
    assert "cat" in imagenet_class_name(top5[0][0])


def test_classify_coffee_is_espresso_or_cup():
    top2 = classify(img_as_float32(data.coffee()), top=2)
    assert {967, 968} & {i for i, _ in top2}


# --- shapes, conventions, determinism ---------------------------------------------
def test_shapes_and_channels_on_non_square_non_multiple_input(images, feats):
    assert [f.shape for f in feats] == [(3, 24, 16, 24), (3, 40, 8, 12),
                                         (3, 112, 4, 6), (3, 320, 2, 3)]
    assert all(f.dtype == np.float32 for f in feats)
    # sides that are not multiples of the stride: ceil(size / stride) cells
    odd = extract_features(images[:1, :50, :70], strides=STRIDES)
    expected = [(13, 18), (7, 9), (4, 5), (2, 3)]
    assert [f.shape[2:] for f in odd] == expected
    assert [feature_size((50, 70), s) for s in STRIDES] == expected
    assert [f.shape[1] for f in odd] == [LITE0_CHANNELS[s] for s in STRIDES]


def test_extractor_attributes_order_and_normalization(images):
    fe = FeatureExtractor(strides=(16, 8), device="cpu")
    assert fe.strides == (16, 8) and fe.channels == (112, 40)
    assert all(not p.requires_grad for p in fe.parameters())
    fe.train()
    assert not fe.body.training  # batch-norm statistics stay frozen
    x = torch.from_numpy(np.moveaxis(images, -1, 1).copy())
    out = fe(x)
    assert [tuple(o.shape) for o in out] == [(3, 112, 4, 6), (3, 40, 8, 12)]
    # same as the full timm feature network fed with x * 2 - 1 (mean = std = 0.5)
    full = load_backbone(device="cpu", features_only=True)
    with torch.no_grad():
        ref = full(x * 2 - 1)
    torch.testing.assert_close(out[0], ref[3], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[1], ref[2], rtol=1e-4, atol=1e-5)
    # and the same as the numpy path
    np_out = extract_features(images, strides=(16, 8), device="cpu")
    assert [f.shape[1] for f in np_out] == [112, 40]
    np.testing.assert_allclose(np_out[0], out[0].numpy(), rtol=1e-4, atol=1e-4)


def test_deterministic_and_batch_independent(images, feats):
    again = extract_features(images, strides=STRIDES, batch_size=2, progress=True)
    for fa, fg in zip(feats, again):
        np.testing.assert_array_equal(fa, fg)
    # batching changes the float summation order only; a list of images works too
    other = extract_features(list(images), strides=STRIDES, batch_size=3)
    for fa, fo in zip(feats, other):
        np.testing.assert_allclose(fa, fo, rtol=1e-4, atol=1e-4)


def test_numpy_conventions(images):
    one = extract_features(images[0], strides=(8, 16))  # a single (H, W, 3) image
    assert isinstance(one, list) and one[0].shape == (1, 40, 8, 12)
    with pytest.raises(TypeError, match="img_as_float32"):
        extract_features((images * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="channel-first"):
        extract_features(np.moveaxis(images, -1, 1))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        FeatureExtractor(strides=(8, 16))(torch.zeros(1, 64, 64, 3))


def test_gradient_flows_only_when_input_asks():
    fe = FeatureExtractor(strides=(8,), device="cpu")
    assert len(fe.body.blocks) == 3  # stages after stride 8 are not computed
    x = torch.rand(1, 3, 32, 32)
    assert not fe(x)[0].requires_grad
    x.requires_grad_(True)
    fe(x)[0].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# --- clear errors -------------------------------------------------------------------
@pytest.mark.parametrize("strides", [(8, 12), (64,), (), (8, 8), ("8",)])
def test_bad_strides(strides):
    with pytest.raises(ValueError, match=r"\(2, 4, 8, 16, 32\)|duplicates"):
        FeatureExtractor(strides=strides)


def test_unknown_backbone_lists_close_matches():
    with pytest.raises(ValueError, match="resnet18") as err:
        extract_features(np.zeros((1, 32, 32, 3), np.float32), backbone="resnet_18")
    assert "Unknown backbone" in str(err.value)


def test_backbone_without_reachable_weights_fails_fast(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf_constants
    offline_before = hf_constants.HF_HUB_OFFLINE
    monkeypatch.setattr(af, "_HUB_REACHABLE", False)  # as on a machine without network
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as err:
        FeatureExtractor(backbone="resnet18", strides=(8, 16))
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert isinstance(err.value, OSError)
    for part in ("'resnet18'", "efficientnet_lite0", "HF_HOME", "TORCH_HOME"):
        assert part in message
    assert hf_constants.HF_HUB_OFFLINE == offline_before  # switch restored afterwards


def test_load_backbone_is_cached_and_frozen():
    a = load_backbone("efficientnet_lite0", device="cpu")
    b = load_backbone("efficientnet_lite0", device="cpu")
    assert a is b and not a.training
    assert all(not p.requires_grad for p in a.parameters())


def test_other_timm_backbone_path(monkeypatch, images):
    # where a hub is reachable, any timm model works the same way; here its weights
    # are replaced by a random initialisation (no network) to check the plumbing
    monkeypatch.setattr(af, "_CACHE", {})
    monkeypatch.setattr(af, "_create_pretrained",
                        lambda name, **kw: timm.create_model(name, pretrained=False, **kw))
    fe = FeatureExtractor("resnet18", strides=(16, 8), device="cpu")
    assert fe.channels == (256, 128)
    # ImageNet normalization from the model's pretrained_cfg, not lite0's 0.5
    np.testing.assert_allclose(fe.mean.flatten().numpy(), [0.485, 0.456, 0.406])
    source = load_backbone("resnet18", device="cpu", features_only=True)
    assert torch.equal(fe.body.state_dict()["conv1.weight"], source.state_dict()["conv1.weight"])
    out = extract_features(images[:1], backbone="resnet18", strides=(8,), progress=True)
    assert out[0].shape == (1, 128, 8, 12)
