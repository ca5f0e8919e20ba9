"""Every normalization step of adkit.normalize honours the one contract of
:class:`adkit.normalize.base.Transform` (as tests/test_contract.py does for detectors):
images in, float32 (N, H, W, 3) in [0, 1] out; a clear error before ``fit`` and on bad
input; an exact save / load round trip; ``transform_with_inverse`` gives the same images
and an inverse that brings (N, H, W) maps back to the input frame."""
import inspect

import numpy as np
import pytest

import adkit
import adkit.normalize as normalize
from adkit.estimator import NotFittedError
from adkit.normalize.base import Transform

#: the smallest settings that still exercise each step end to end
FAST = {
    "Midway": {},
    "Align": {"progress": False},
    "BackgroundCleanup": {"gray_range": (0, 100 / 255)},
    "N2N": {"epochs": 1, "crops_per_image": 1, "crop": 32, "progress": False},
}
#: steps that move pixels: their inverse is not the identity
MOVING = {"Align"}
#: steps with nothing to learn: ready as built
NO_FIT = {"BackgroundCleanup"}


@pytest.fixture(scope="module")
def pill():
    return adkit.data.load("synthetic/pill", n_train=6, n_test=3, size=64, seed=0, dust=1.0)


def test_every_transform_is_covered():
    public = {name for name in normalize.__all__
              if isinstance(getattr(normalize, name), type)
              and issubclass(getattr(normalize, name), Transform)
              and getattr(normalize, name) is not Transform}
    assert public == set(FAST)


@pytest.mark.parametrize("name", sorted(FAST))
def test_contract(name, pill, tmp_path):
    train, test = pill
    cls = getattr(normalize, name)
    step = cls(**FAST[name])
    x = test.images
    if name in NO_FIT:
        assert step.transform(x).shape == x.shape
    else:
        with pytest.raises(NotFittedError, match=r"fit"):
            step.transform(x)
        with pytest.raises(NotFittedError, match=r"fit"):
            step.transform_with_inverse(x)
    assert step.fit(train.images) is step and step.is_fitted
    out = step.transform(x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    # one image in, a batch of one out (equal up to the float rounding of batched torch
    # arithmetic); a Split is accepted like its images
    np.testing.assert_allclose(step.transform(x[0]), out[:1], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(step.transform(test), out)
    # transform_with_inverse: the same images, and an inverse for (N, H, W) maps
    out2, inverse = step.transform_with_inverse(x)
    np.testing.assert_array_equal(out2, out)
    maps = np.random.default_rng(0).random(x.shape[:3]).astype(np.float32)
    back = inverse(maps)
    assert back.shape == maps.shape and np.isfinite(back).all()
    if name in MOVING:   # a constant map comes back constant inside the field of view
        ones = inverse(np.ones_like(maps))
        assert (ones[:, 16:-16, 16:-16] > 0.99).mean() > 0.9
    else:
        np.testing.assert_array_equal(back, maps)
    # exact round trip through a file, in parameters and in what it does
    again = cls.load(step.save(tmp_path / name))
    assert type(again) is cls and again.get_params() == step.get_params()
    assert repr(again) == repr(step)
    np.testing.assert_array_equal(again.transform(x), out)
    # fit_transform is fit then transform; fitting again gives the same step (seeded)
    twin = cls(**FAST[name])
    np.testing.assert_array_equal(twin.fit_transform(train.images),
                                  twin.transform(train.images))
    np.testing.assert_array_equal(twin.transform(x), out)


@pytest.mark.parametrize("name", sorted(FAST))
def test_clear_errors_on_bad_input(name, pill):
    train, test = pill
    step = getattr(normalize, name)(**FAST[name]).fit(train.images)
    with pytest.raises(TypeError, match="img_as_float32"):
        step.transform((test.images * 255).astype(np.uint8))
    with pytest.raises(TypeError, match="img_as_float32"):
        getattr(normalize, name)(**FAST[name]).fit((train.images * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="grayscale"):
        step.transform(test.images[..., 0])
    with pytest.raises(ValueError, match="NaN"):
        step.transform(np.full_like(test.images, np.nan))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        step.transform(test.images * 3)
    with pytest.raises(ValueError, match="empty"):
        step.fit(np.zeros((0, 64, 64, 3), np.float32))
    if name in MOVING:
        with pytest.raises(ValueError, match="resize"):
            step.transform(test.images[:, :32, :32])


@pytest.mark.parametrize("name", sorted(FAST))
def test_parameters_are_keywords_and_validated(name):
    cls = getattr(normalize, name)
    params = inspect.signature(cls.__init__).parameters
    assert all(p.kind == p.KEYWORD_ONLY for n, p in params.items() if n != "self")
    with pytest.raises(TypeError):
        cls(*[p.default for n, p in params.items() if n != "self"][:1])
    first = next(n for n in params if n != "self")
    with pytest.raises((TypeError, ValueError), match=first):
        cls(**{first: object()})
