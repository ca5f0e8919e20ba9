"""Tests of U-Flow's invertible blocks (adkit.nets.flow)."""
import pytest
import torch

from adkit.nets.flow import (ActNorm, AffineCoupling, GlowStep, InvConv1x1,
                             InvertibleSequential, Permutation, PixelShuffleUp, UFlowNet,
                             flow_nll, soft_clamp)

torch.set_num_threads(2)


def _perturb(module, scale=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return module


def _jacobian_logdet(fn, x):
    """log|det J| of fn at one sample x (B = 1), by autograd, in float64."""
    shape = x.shape
    J = torch.autograd.functional.jacobian(lambda v: fn(v.view(shape)).flatten(), x.flatten())
    return torch.linalg.slogdet(J)[1].item()


@pytest.mark.parametrize("block", [
    lambda: ActNorm(6),
    lambda: Permutation(6, seed=1),
    lambda: InvConv1x1(6, seed=1),
    lambda: AffineCoupling(6, kernel_size=3),
    lambda: AffineCoupling(5, kernel_size=1),
    lambda: GlowStep(6, 3, permutation="fixed"),
    lambda: GlowStep(7, 1, permutation="conv"),
])
def test_blocks_invert_and_log_det_matches_autograd(block):
    torch.manual_seed(0)
    b = _perturb(block()).double().eval()
    x = torch.randn(3, b_channels(b), 4, 4, dtype=torch.float64)
    y, ld = b(x)
    assert ld.shape == (3,)
    assert torch.allclose(b.inverse(y), x, atol=1e-8)
    for i in range(2):
        want = _jacobian_logdet(lambda v: b(v)[0], x[i:i + 1])
        assert ld[i].item() == pytest.approx(want, abs=1e-6)


def b_channels(b):
    for m in b.modules():
        if isinstance(m, ActNorm):
            return m.bias.shape[1]
        if isinstance(m, Permutation):
            return m.perm.numel()
        if isinstance(m, InvConv1x1):
            return m.lower.shape[0]
        if isinstance(m, AffineCoupling):
            return m.c1 + m.c2
    raise AssertionError


def test_actnorm_data_dependent_init():
    torch.manual_seed(0)
    a = ActNorm(4).train()
    x = 3 + 5 * torch.randn(8, 4, 6, 6)
    y, _ = a(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(y.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-4)
    assert int(a.initialized) == 1
    y2, _ = a(x + 1)  # not re-initialized
    assert not torch.allclose(y2.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-2)


def test_soft_clamp_bounds_the_log_scale():
    s = torch.linspace(-100, 100, 101)
    c = soft_clamp(s, 2.0)
    assert c.abs().max() < 2.0
    assert soft_clamp(torch.tensor(1e-3), 2.0).item() == pytest.approx(1e-3, rel=1e-5)


def test_pixel_shuffle_up_shapes_and_inverse():
    up = PixelShuffleUp()
    x = torch.randn(2, 8, 3, 5)
    y, ld = up(x)
    assert y.shape == (2, 2, 6, 10) and torch.all(ld == 0)
    assert torch.equal(up.inverse(y), x)
    with pytest.raises(ValueError, match="divisible by 4"):
        up(torch.randn(1, 6, 2, 2))


@pytest.mark.parametrize("permutation", ["fixed", "conv"])
def test_uflow_net_u_shape_invertible(permutation):
    torch.manual_seed(0)
    net = UFlowNet([4, 8, 16], n_steps=2, permutation=permutation)
    feats = [torch.randn(2, 4, 4, 4), torch.randn(2, 8, 2, 2), torch.randn(2, 16, 1, 1)]
    net.train()
    net(feats)  # ActNorm init
    _perturb(net, 0.1).eval()
    z, ld = net(feats)
    # coarsest: 16 ch → 8 out, 8 up (2 ch at 2x2); middle: 8 + 2 = 10 → 6 out, 4 up
    # (half rounded down to a multiple of 4: 1 ch at 4x4); finest: 4 + 1 = 5, all out
    assert [zi.shape[1] for zi in z] == net.z_channels == [5, 6, 8]
    assert [zi.shape[2:] for zi in z] == [f.shape[2:] for f in feats]
    rec = net.inverse(z)
    for a, b in zip(rec, feats):
        assert torch.allclose(a, b, atol=1e-4)
    # total log det against autograd on one sample (float64)
    net = net.double()
    f1 = [f[:1].double() for f in feats]
    sizes = [f.numel() for f in f1]

    def fn(flat):
        parts = torch.split(flat, sizes)
        zz, _ = net([p.view_as(f) for p, f in zip(parts, f1)])
        return torch.cat([zi.flatten() for zi in zz])

    flat = torch.cat([f.flatten() for f in f1])
    J = torch.autograd.functional.jacobian(fn, flat)
    assert net(f1)[1].item() == pytest.approx(torch.linalg.slogdet(J)[1].item(), abs=1e-6)


def test_uflow_net_rejects_mismatched_scales():
    net = UFlowNet([8, 16], n_steps=1)
    with pytest.raises(ValueError, match="twice"):
        net([torch.randn(1, 8, 5, 5), torch.randn(1, 16, 2, 2)])
    with pytest.raises(ValueError, match="2 feature maps"):
        net([torch.randn(1, 8, 4, 4)])


def test_flow_nll_is_half_squared_norm_minus_log_det_per_dim():
    z = [torch.ones(2, 3, 2, 2), 2 * torch.ones(2, 1, 1, 1)]
    ld = torch.tensor([1.0, 3.0])
    dims = 12 + 1
    want = ((0.5 * 12 + 0.5 * 4 - ld) / dims).mean()
    assert flow_nll(z, ld).item() == pytest.approx(want.item())


def test_training_reduces_loss_towards_gaussian_latent():
    torch.manual_seed(0)
    feats = [3 + 2 * torch.randn(32, 4, 4, 4), torch.randn(32, 8, 2, 2) * 0.1]
    feats[1][:, 4:] = feats[1][:, :4] * 2  # correlated channels: the flow must learn them
    net = UFlowNet([4, 8], n_steps=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    losses = []
    for _ in range(60):
        z, ld = net(feats)
        loss = flow_nll(z, ld)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.25
    assert InvertibleSequential is not None
