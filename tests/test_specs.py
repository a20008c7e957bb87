import math

import pytest

from tasks.errors import UsageError
from tasks.specs import DSRNSpec, FCMnistSpec, FCPoissonSpec, SyntheticSpec, get_spec, spec_from_dict


def test_defaults_follow_the_task_specification():
    s = SyntheticSpec()
    assert (s.T, s.batch_size, s.steps, s.lr, s.n_in, s.n_hidden, s.n_classes) == (200, 256, 3000, 3e-3, 100, 4, 2)
    assert s.a_syn == pytest.approx(math.exp(-1 / 10)) and s.a_mem == pytest.approx(math.exp(-1 / 20))
    assert s.w1_scale == pytest.approx(7 * (1 - math.exp(-1)))
    f = FCMnistSpec()
    assert (f.T, f.batch_size, f.epochs, f.lr, f.beta, f.n_hidden) == (25, 128, 1, 5e-4, 0.95, 1000)
    p = FCPoissonSpec()
    assert (p.T, p.batch_size, p.epochs, p.lr, p.tau, p.n_hidden) == (50, 128, 10, 1e-3, 100.0, 196)
    d = DSRNSpec()
    assert (d.T, d.batch_size, d.epochs, d.lr, d.tau, d.v_th, d.surrogate_a) == (2, 64, 11, 1e-3, 0.25, 0.4, 0.5)
    assert (d.lr_step_epochs, d.lr_gamma, d.patience, d.validation_size) == (10, 0.1, 7, 5000)
    assert (d.mean, d.std, d.pad) == (0.1307, 0.3082, 4)


def test_dsrn_has_19_spiking_layers_with_the_published_shapes():
    layers = DSRNSpec().layers()
    assert len(layers) == 19
    assert layers[0].shape == (64, 28, 28)
    assert [l.shape for l in layers[1:7]] == [(128, 28, 28)] * 6
    assert [l.shape for l in layers[7:13]] == [(256, 14, 14)] * 6
    assert [l.shape for l in layers[13:17]] == [(512, 7, 7)] * 4
    assert layers[17].shape == (256,) and layers[18].shape == (10,)


def test_dsrn_width_scales_every_channel_count():
    d = DSRNSpec(width=1 / 16)
    assert [b.out_channels for b in d.blocks()] == [8, 8, 8, 16, 16, 16, 32, 32]
    assert d.hidden_units == 16 and d.final_channels == 32
    projections = [b.prefix for b in d.blocks() if b.has_projection]
    assert projections == ["layer1.0", "layer2.0", "layer3.0"]


def test_synapse_sources_are_spiking_layers_or_the_input():
    for name in ("synthetic", "fc_mnist", "fc_mnist_poisson", "dsrn_tdbn"):
        spec = get_spec(name)
        names = set(spec.layer_names()) | {"input"}
        for syn in spec.synapses():
            assert syn.source in names, (name, syn)


def test_learning_rate_schedule_steps_every_ten_epochs():
    d = DSRNSpec()
    assert [d.learning_rate(e) for e in (0, 9, 10, 11)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])


def test_every_task_may_step_its_learning_rate_and_none_does_by_default():
    assert [FCMnistSpec().learning_rate(e) for e in (0, 1, 5)] == [5e-4] * 3
    f = get_spec("fc_mnist", lr=1e-3, lr_gamma=0.1)
    assert [f.learning_rate(e) for e in (0, 1, 2)] == pytest.approx([1e-3, 1e-4, 1e-5])
    p = get_spec("fc_mnist_poisson", lr_gamma=0.5, lr_step_epochs=2)
    assert [p.learning_rate(e) for e in (0, 1, 2, 4)] == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])


@pytest.mark.parametrize(
    "override",
    [{"T": 0}, {"T": -3}, {"batch_size": 0}, {"epochs": 0}, {"lr": 0.0}, {"lr": -1e-3},
     {"lr": float("nan")}, {"steps": 0}, {"seed": -1}, {"dataset": "cifar"}, {"lr_gamma": 0.0},
     {"lr_gamma": 1.5}, {"lr_step_epochs": 0}],
)
def test_bad_overrides_are_usage_errors(override):
    name = "fc_mnist"
    with pytest.raises(UsageError):
        get_spec(name, **override)


def test_unknown_task_and_setting():
    with pytest.raises(UsageError, match="valid tasks"):
        get_spec("imagenet")
    with pytest.raises(UsageError, match="width"):
        get_spec("fc_mnist", width=0.5)
    with pytest.raises(UsageError):
        get_spec("dsrn_tdbn", width=0)
    with pytest.raises(UsageError):
        get_spec("dsrn_tdbn", surrogate_center="left")


def test_spec_round_trips_through_a_dict():
    spec = get_spec("dsrn_tdbn", T=4, width=0.25, seed=3)
    assert spec_from_dict(spec.to_dict()) == spec
