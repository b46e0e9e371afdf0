"""graphrec.draws: uniform (the CPU fast path is U[0, 1), reproducible from the torch generator, and moves it on)
and dropout from uniform draws."""
import pytest
import torch

from graphrec.draws import Dropout, dropout, uniform


def test_uniform_is_reproducible_from_the_torch_generator_and_advances_it():
    first = uniform((1000, 8), torch.Generator().manual_seed(3))
    assert first.shape == (1000, 8) and first.dtype == torch.float32
    assert torch.equal(first, uniform((1000, 8), torch.Generator().manual_seed(3)))
    gen = torch.Generator().manual_seed(3)
    uniform((1000, 8), gen)
    assert not torch.equal(first, uniform((1000, 8), gen))          # the second call draws other values
    state = gen.get_state()                                          # what a checkpoint saves
    resumed = torch.Generator()
    resumed.set_state(state)
    assert torch.equal(uniform((5, 3), gen), uniform((5, 3), resumed))


def test_uniform_values_are_uniform_on_the_unit_interval():
    values = uniform((200_000,), torch.Generator().manual_seed(0), dtype=torch.float64)
    assert values.dtype == torch.float64
    assert 0.0 <= float(values.min()) and float(values.max()) < 1.0
    assert abs(float(values.mean()) - 0.5) < 0.005                  # sd of the mean: 0.00065
    counts = torch.histc(values, bins=10, min=0.0, max=1.0)
    assert float((counts - 20_000).abs().max()) < 800               # each decile within ~6 sd of 20,000


def test_dropout_zeroes_at_its_rate_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(400, 50)
    out = dropout(x, 0.3, training=True)
    torch.testing.assert_close(out.unique(), torch.tensor([0.0, 1 / 0.7]))
    assert float((out == 0).float().mean()) == pytest.approx(0.3, abs=0.01)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.02)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0, training=True) is x


def test_dropout_module_follows_the_mode_and_the_global_generator():
    layer = Dropout(0.5)
    x = torch.ones(64, 8)
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), first) and (first == 0).any()  # reproducible from the checkpointed global state
    assert layer.eval()(x) is x
