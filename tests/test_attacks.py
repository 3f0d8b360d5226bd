"""Tests of helpers.attacks: Gaussian noise, FGSM, PGD and pixel noise on the [0, 1]
pixel scale.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import helpers
from helpers import ParameterError, attacks, metrics
from helpers import local_errors as le

MEAN, STD = 0.5, 0.5  # the chapter's normalisation: pixels in [-1, 1]


def image_data(n_train=600, n_test=300, seed=0, mean=MEAN, std=STD):
    """MNIST-shaped 10-class images: a random template per class plus noise, clipped to
    [0, 1].

    Clipping makes many pixels exactly 0 or 1, the edges of the valid range.
    """
    g = torch.Generator().manual_seed(seed)
    templates = (torch.rand(10, 1, 28, 28, generator=g) * 1.6 - 0.3).clamp(0, 1)

    def draw(n):
        y = torch.arange(n) % 10
        x01 = (templates[y] + 0.25 * torch.randn(n, 1, 28, 28, generator=g)).clamp(0, 1)
        return (x01 - mean) / std, y  # the loader's arithmetic (float32)

    return helpers.Data(
        *draw(n_train), *draw(n_test), mean=mean, std=std, source="synthetic"
    )


@pytest.fixture(scope="module")
def trained():
    """A tiny MLP trained to high accuracy on the images above (a second or two)."""
    data = image_data()
    helpers.seed_everything(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)
    )
    helpers.fit(
        model,
        data,
        torch.optim.Adam(model.parameters(), lr=1e-3),
        epochs=3,
        batch_size=50,
    )
    _, acc = helpers.evaluate(model, data.X_test, data.y_test)
    assert acc > 0.95
    return model, data


def in_pixel_range(X_adv, data):
    lo, hi = attacks.pixel_bounds(data, X_adv)
    x01 = data.to_unit(X_adv)
    return bool(
        (X_adv >= lo).all()
        and (X_adv <= hi).all()
        and (x01 >= -1e-6).all()
        and (x01 <= 1 + 1e-6).all()
    )


def mean_loss(model, X, y):
    with torch.no_grad():
        return float(F.cross_entropy(model(X), y))


# ------------------------------------------------------------------- bounds and eps = 0
def test_pixel_bounds_are_the_normalised_black_and_white():
    X = torch.zeros(1)
    lo, hi = attacks.pixel_bounds((0.1307, 0.3081), X)
    assert float(lo) == pytest.approx(-0.1307 / 0.3081) and float(hi) == pytest.approx(
        (1 - 0.1307) / 0.3081
    )
    data = image_data(n_train=10, n_test=10)
    lo, hi = attacks.pixel_bounds(data, data.X_train)
    assert lo == -1 and hi == 1
    # clean black and white pixels lie exactly on the bounds (same float32 arithmetic as
    # the loader)
    assert float(data.X_train.min()) == float(lo) and float(
        data.X_train.max()
    ) == float(hi)


def test_fgsm_and_pgd_with_eps_zero_return_the_clean_inputs_and_accuracy(trained):
    model, data = trained
    X, y = data.X_test, data.y_test
    assert torch.equal(attacks.fgsm(model, X, y, data, eps=0.0), X)
    assert torch.equal(attacks.pgd(model, X, y, data, eps=0.0, steps=3), X)
    assert torch.equal(attacks.gaussian_noise(X, data, sigma=0.0), X)
    clean = helpers.evaluate(model, X, y)[1]
    assert metrics.accuracy_under_attack(model, X, y, "none", data) == clean
    assert metrics.accuracy_under_attack(model, X, y, "fgsm", data, eps=0.0) == clean
    assert (
        metrics.accuracy_under_attack(model, X, y, "pgd", data, eps=0.0, steps=2)
        == clean
    )
    assert (
        metrics.accuracy_under_attack(model, X, y, "gaussian", data, sigma=0.0) == clean
    )


# --------------------------------------------------------- valid range, size, direction
@pytest.mark.parametrize("size", [0.05, 0.3, 1.0])
def test_attacks_never_leave_the_valid_pixel_range(trained, size):
    model, data = trained
    X, y = data.X_test, data.y_test
    g = torch.Generator().manual_seed(0)
    outs = {
        "gaussian": attacks.gaussian_noise(X, data, size, generator=g),
        "fgsm": attacks.fgsm(model, X, y, data, size),
        "pgd": attacks.pgd(model, X, y, data, size, steps=5, generator=g),
    }
    for name, X_adv in outs.items():
        assert X_adv.shape == X.shape and X_adv.dtype == X.dtype, name
        assert in_pixel_range(X_adv, data), name
    # and stay in the L-infinity ball of radius eps (pixel scale)
    for name in ("fgsm", "pgd"):
        assert (
            float((data.to_unit(outs[name]) - data.to_unit(X)).abs().max())
            <= size + 1e-6
        ), name


def test_valid_range_with_the_standard_mnist_normalisation(trained):
    model, _ = trained
    data = image_data(n_train=10, n_test=200, mean=0.1307, std=0.3081)
    X, y = data.X_test, data.y_test
    for X_adv in (
        attacks.fgsm(model, X, y, data, 0.5),
        attacks.pgd(model, X, y, (0.1307, 0.3081), 0.5, steps=3),
        attacks.gaussian_noise(X, data, 0.8),
    ):
        assert in_pixel_range(X_adv, data)


def test_fgsm_eps_is_converted_through_the_normalisation(trained):
    """The same attack written on the pixel scale, for a model composed with the
    normalisation.
    """
    model, data = trained
    X, y = data.X_test[:50], data.y_test[:50]
    eps = 0.1
    x01 = data.to_unit(X).requires_grad_(True)
    loss = F.cross_entropy(model(data.from_unit(x01)), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x01)
    want = data.from_unit((x01.detach() + eps * g.sign()).clamp(0, 1))
    got = attacks.fgsm(model, X, y, data, eps)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # unclipped pixels with a gradient move by exactly eps / std in normalised units
    moved = (got - X).abs()
    free = (g != 0) & (x01.detach() > eps) & (x01.detach() < 1 - eps)
    assert free.sum() > 1000
    torch.testing.assert_close(moved[free], torch.full_like(moved[free], eps / STD))


def test_gaussian_noise_has_std_sigma_on_the_pixel_scale():
    data = image_data(n_train=10, n_test=10)
    # mid-grey: no clipping at sigma = 0.1
    X = data.from_unit(torch.full((200, 1, 28, 28), 0.5))
    noisy = attacks.gaussian_noise(
        X, data, 0.1, generator=torch.Generator().manual_seed(0)
    )
    assert float((data.to_unit(noisy) - 0.5).std()) == pytest.approx(0.1, rel=0.02)
    again = attacks.gaussian_noise(
        X, data, 0.1, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(noisy, again)


def test_fgsm_increases_the_loss_and_lowers_accuracy(trained):
    model, data = trained
    X, y = data.X_test, data.y_test
    clean_loss, clean_acc = mean_loss(model, X, y), helpers.evaluate(model, X, y)[1]
    losses = [
        mean_loss(model, attacks.fgsm(model, X, y, data, eps), y)
        for eps in (0.02, 0.1, 0.3)
    ]
    assert clean_loss < losses[0] < losses[1] < losses[2]
    assert (
        metrics.accuracy_under_attack(model, X, y, "fgsm", data, eps=0.3)
        < clean_acc - 0.3
    )


def test_gradient_sign_is_the_cross_entropys_and_survives_a_saturated_softmax(trained):
    """The attack direction is the sign of the cross-entropy's input gradient, computed
    in a way that does not underflow: with logits scaled x40 (gaps of 100-250 between
    the top two), float32's softmax is exactly one-hot for every example and the plain
    float32 gradient is exactly zero, while a float64 copy of the same model, with the
    loss written without cancellation, still has the true (tiny) gradient. Our sign must
    equal that float64 sign."""
    model, data = trained
    X, y = data.X_test[:100], data.y_test[:100]
    direction = attacks._input_gradient_sign(model, X, y)
    x = X.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    # unsaturated net: the same as autograd's float32 sign
    assert torch.equal(direction, plain.sign())

    loud = nn.Sequential(model, nn.Linear(10, 10, bias=False))
    with torch.no_grad():
        loud[1].weight.copy_(40 * torch.eye(10))
    x = X.clone().requires_grad_(True)
    (plain32,) = torch.autograd.grad(F.cross_entropy(loud(x), y, reduction="sum"), x)
    # float32's softmax is one-hot: the plain gradient vanished everywhere
    assert (plain32 == 0).all()

    # Reference: a float64 copy of the net and the cross-entropy written as log(1 +
    # sum_j exp(z_j - z_y)), whose gradient has no cancellation (autograd's softmax -
    # one_hot rounds p_y - 1 to 0 even in float64).
    loud64 = copy.deepcopy(loud).double()
    x64 = X.double().requires_grad_(True)
    z = loud64(x64)
    gaps = (z - z.gather(1, y.view(-1, 1))).masked_fill(
        F.one_hot(y, 10).bool(), float("-inf")
    )
    (grad64,) = torch.autograd.grad(torch.log1p(gaps.exp().sum(1)).sum(), x64)
    assert (grad64.flatten(1).abs().amax(1) > 0).all()
    ours = attacks._input_gradient_sign(loud, X, y)
    # not a rounding tie
    clear = grad64.abs() > 1e-5 * grad64.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    assert clear.float().mean() > 0.9
    assert torch.equal(ours[clear], grad64.sign().float()[clear])
    # and the attack bites: a plain float32 sign-gradient step would not move the input
    # at all
    clean = helpers.evaluate(loud, X, y)[1]
    assert (
        metrics.accuracy_under_attack(loud, X, y, "fgsm", data, eps=0.3) < clean - 0.3
    )


def test_pgd_is_at_least_as_strong_as_fgsm(trained):
    model, data = trained
    X, y = data.X_test, data.y_test
    clean_acc = helpers.evaluate(model, X, y)[1]
    accs = {}
    for eps in (0.1, 0.25, 0.3):
        fgsm_acc = metrics.accuracy_under_attack(model, X, y, "fgsm", data, eps=eps)
        pgd_acc = metrics.accuracy_under_attack(
            model,
            X,
            y,
            "pgd",
            data,
            eps=eps,
            steps=10,
            generator=torch.Generator().manual_seed(0),
        )
        assert pgd_acc <= fgsm_acc
        fgsm_loss = mean_loss(model, attacks.fgsm(model, X, y, data, eps), y)
        pgd_loss = mean_loss(
            model, attacks.pgd(model, X, y, data, eps, steps=10, random_start=False), y
        )
        assert pgd_loss >= fgsm_loss
        accs[eps] = (fgsm_acc, pgd_acc)
    # not vacuous: where FGSM starts to bite, PGD is clearly stronger
    assert accs[0.3][0] < clean_acc and accs[0.3][1] < accs[0.3][0] - 0.1


def test_attacks_restore_mode_and_touch_no_parameter_gradient(trained):
    model, data = trained
    model.zero_grad(set_to_none=True)  # training left the last step's gradients
    model.train()
    try:
        attacks.fgsm(model, data.X_test[:20], data.y_test[:20], data, 0.1)
        attacks.pgd(model, data.X_test[:20], data.y_test[:20], data, 0.1, steps=2)
        metrics.accuracy_under_attack(
            model, data.X_test[:20], data.y_test[:20], "fgsm", data, eps=0.1
        )
        assert model.training
        assert all(p.grad is None for p in model.parameters())
    finally:
        model.eval()


def test_accuracy_under_attack_is_batch_independent_and_takes_a_callable(trained):
    model, data = trained
    X, y = data.X_test, data.y_test
    a = metrics.accuracy_under_attack(model, X, y, "fgsm", data, eps=0.1, batch_size=7)
    b = metrics.accuracy_under_attack(
        model, X, y, "fgsm", data, eps=0.1, batch_size=1000
    )
    assert a == pytest.approx(b, abs=1 / len(y) + 1e-12)
    # (a "custom attack": mirror the pixel range)
    flip = lambda model, X, y, norm: -X  # noqa: E731
    with torch.no_grad():
        want = int((model(-X).argmax(1) == y).sum()) / len(y)
    assert metrics.accuracy_under_attack(model, X, y, flip, data) == want


def test_works_on_a_truncated_local_error_net():
    data = image_data(n_train=10, n_test=40)
    torch.manual_seed(0)
    net = le.LocalErrorNet(width=16, depth=3)
    for layer in (1, 3):
        X_adv = attacks.fgsm(net.truncated(layer), data.X_test, data.y_test, data, 0.1)
        assert X_adv.shape == data.X_test.shape and in_pixel_range(X_adv, data)


# --------------------------------------------------------------------------- errors
def test_bad_sizes_and_names_stop_with_clear_errors(trained):
    model, data = trained
    X, y = data.X_test[:5], data.y_test[:5]
    for bad in (-0.1, math.nan, math.inf, True):
        with pytest.raises(ParameterError, match="eps"):
            attacks.fgsm(model, X, y, data, bad)
        with pytest.raises(ParameterError, match="sigma"):
            attacks.gaussian_noise(X, data, bad)
    with pytest.raises(ParameterError, match=r"pixel scale.*255"):
        attacks.fgsm(model, X, y, data, 8)  # 8/255 meant
    with pytest.raises(ParameterError, match="eps"):
        attacks.pgd(model, X, y, data, 2.0)
    with pytest.raises(ParameterError, match="steps"):
        attacks.pgd(model, X, y, data, 0.1, steps=0)
    with pytest.raises(ParameterError, match="step_size"):
        attacks.pgd(model, X, y, data, 0.1, step_size=-0.01)
    with pytest.raises(ParameterError, match="allowed"):
        metrics.accuracy_under_attack(model, X, y, "deepfool", data)
    for bad_norm in (0.5, torch.tensor([0.5, 0.5]), "half"):
        with pytest.raises(TypeError, match=r"helpers.Data.*\(mean, std\)"):
            attacks.fgsm(model, X, y, bad_norm, 0.1)
    with pytest.raises(ValueError, match="std > 0"):
        attacks.fgsm(model, X, y, (0.5, 0.0), 0.1)
    with pytest.raises(ValueError, match="rows"):
        metrics.accuracy_under_attack(model, X, y[:3], "none", data)


# -------------------------------------------------------------------------- pixel noise
LEVELS = [i / 20 for i in range(11)]


def test_noise_sets_exactly_int_level_times_784_pixels_per_image():
    x = torch.zeros(6, 1, 28, 28)
    counts = []
    for level in LEVELS + [0.8, 1.0]:
        noisy = attacks.add_pixel_noise(x, level, torch.Generator().manual_seed(0))
        changed = (noisy != x).reshape(6, -1).sum(1)
        assert changed.tolist() == [int(level * 784)] * 6
        counts.append(int(changed[0]))
        assert (
            noisy.shape == x.shape
            and float(noisy.min()) >= 0
            and float(noisy.max()) <= 1
        )
        assert torch.equal(
            noisy[noisy != 0], torch.full((6 * int(level * 784),), attacks.WHITE_PIXEL)
        )
    assert counts == [0, 39, 78, 117, 156, 196, 235, 274, 313, 352, 392, 627, 784]
    flat = attacks.add_pixel_noise(
        torch.rand(4, 784), 0.3, torch.Generator().manual_seed(0)
    )
    assert flat.shape == (4, 784) and float(flat.max()) <= 1
    assert attacks.WHITE_PIXEL == pytest.approx(0.7469)


def test_noise_is_reproducible_with_a_generator_and_independent_per_image():
    x = torch.zeros(5, 784)
    a = attacks.add_pixel_noise(x, 0.2, torch.Generator().manual_seed(3))
    b = attacks.add_pixel_noise(x, 0.2, torch.Generator().manual_seed(3))
    c = attacks.add_pixel_noise(x, 0.2, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({tuple((row != 0).nonzero().flatten().tolist()) for row in a}) == 5
    assert torch.equal(x, torch.zeros(5, 784))  # the input is not modified


def test_noise_scales_unit_and_normalized():
    with pytest.raises(ValueError, match="looks normalised. Pass where='normalized'"):
        attacks.add_pixel_noise(torch.full((2, 784), -0.42), 0.1)
    z = torch.full((2, 784), -0.42)
    noisy = attacks.add_pixel_noise(
        z, 0.1, torch.Generator().manual_seed(0), where="normalized"
    )
    assert sorted(set(noisy.flatten().tolist())) == pytest.approx(
        [-0.42, attacks.WHITE_PIXEL]
    )
    with pytest.raises(ValueError, match=r"level=1.5 must be a fraction"):
        attacks.add_pixel_noise(torch.zeros(2, 784), 1.5)
    with pytest.raises(ValueError, match="where='pixels' is not known"):
        attacks.add_pixel_noise(torch.zeros(2, 784), 0.1, where="pixels")
