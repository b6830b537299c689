"""Hardening: classes from the labels present (8), a baseline for every data kind (14), dropout on the
input of image networks (15), and horizontal flips only where the data source allows them (20)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from nasforge.cli import main
from nasforge.config import RetrainConfig, from_dict
from nasforge.data import Dataset, load_dataset
from nasforge.data.base import make_dataset
from nasforge.errors import ConfigError, DataError
from nasforge.evaluate.trainer import Recipe, augment_batch, train
from nasforge.final.references import baseline_description, baseline_model
from nasforge.final.retrain import fit_final, retrain_best
from nasforge.space.chain import ChainSpace, chain_sample
from nasforge.types import Trial, TrialState

from .test_data import make_idx_dir


def write_csv(p: Path, labels: list[str]) -> Path:
    p.write_text("a,b,label\n" + "".join(f"{i * 0.5},{i % 7},{lab}\n" for i, lab in enumerate(labels)))
    return p


# ----------------------------------------------------------------------------- 8: number of classes


@pytest.mark.parametrize("label", ["0", "1", "3", "cat"])
def test_a_single_class_csv_is_refused_whichever_label(tmp_path: Path, label: str) -> None:
    p = write_csv(tmp_path / "one.csv", [label] * 30)
    with pytest.raises(DataError, match=r"single class; give examples of at least two classes") as err:
        load_dataset("csv", p)
    assert "\n" not in str(err.value) and repr(label) in str(err.value)


def test_a_single_class_is_refused_even_with_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    p = tmp_path / "named.npz"
    np.savez(p, x_train=rng.normal(size=(20, 4)), y_train=np.ones(20, dtype=np.int64), classes=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"every training label is 'b', a single class"):
        load_dataset("npz", p)


def test_classes_come_from_the_labels_present(tmp_path: Path) -> None:
    # 1-based labels: two classes, named by their labels, not three with an empty class 0.
    ds = load_dataset("csv", write_csv(tmp_path / "b.csv", ["1", "2"] * 15))
    assert ds.n_classes == 2 and ds.classes == ("1", "2")
    assert set(ds.y_train.tolist()) | set(ds.y_val.tolist()) == {0, 1}
    # Gaps too; test labels count as present and are mapped the same way.
    rng = np.random.default_rng(0)
    y = np.array([0, 5, 9] * 10)
    ds = make_dataset("g", rng.normal(size=(30, 3)), y, rng.normal(size=(6, 3)), np.array([9, 5, 0, 9, 5, 0]))
    assert ds.classes == ("0", "5", "9")
    assert ds.open_test()[1].tolist() == [2, 1, 0, 2, 1, 0]
    # 0..K-1 stays as it was; named classes keep their size even when some are unused.
    assert load_dataset("csv", write_csv(tmp_path / "z.csv", ["0", "1", "2"] * 10)).classes == ("0", "1", "2")
    named = make_dataset("n", rng.normal(size=(20, 3)), np.array([0, 1] * 10), classes=("a", "b", "c"))
    assert named.n_classes == 3


def test_the_cli_refuses_a_single_class_csv_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write_csv(tmp_path / "one.csv", ["1"] * 30)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": "csv", "path": str(p)},
                                   "search": {"trials": 1, "db": str(tmp_path / "s.db")}}))
    before = sorted(tmp_path.iterdir())
    assert main(["search", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "single class" in err and "at least two classes" in err
    assert sorted(tmp_path.iterdir()) == before  # nothing written


# ------------------------------------------------------------------------- 14: baseline per data kind


def layers(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize(("shape", "description", "conv", "pools"), [
    ((1, 28, 28), "conv32 3x3 relu > maxpool2 > conv64 3x3 relu > maxpool2 > dense128 relu", nn.Conv2d, 2),
    ((3, 16), "conv32 k3 relu > maxpool2 > conv64 k3 relu > maxpool2 > dense128 relu", nn.Conv1d, 2),
    ((1, 3), "conv32 k3 relu > maxpool2 > conv64 k3 relu > dense128 relu", nn.Conv1d, 1),
    ((1, 1, 16), "conv32 3x3 relu > conv64 3x3 relu > dense128 relu", nn.Conv2d, 0),
    ((5,), "dense128 relu", None, 0),
])
def test_the_baseline_builds_for_every_data_kind_and_says_what_it_is(
        shape: tuple[int, ...], description: str, conv: type[nn.Module] | None, pools: int) -> None:
    model = baseline_model(shape, 3)
    assert model(torch.zeros(2, *shape)).shape == (2, 3)
    assert baseline_description(shape) == description
    assert layers(model, nn.Linear) == 2
    assert layers(model, nn.MaxPool1d) + layers(model, nn.MaxPool2d) == pools
    assert layers(model, nn.Conv1d) + layers(model, nn.Conv2d) == (0 if conv is None else 2)
    if conv is not None:
        assert layers(model, conv) == 2


def test_retrain_on_sequences_trains_and_describes_the_baseline() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    space = ChainSpace(types=("conv", "dense"), widths=(8,), kernels=(3,), batch_norm=(False,))
    sample = chain_sample(space, [{"type": "conv", "width": 8, "kernel": 3}])
    best = Trial(0, space.key(sample), sample, TrialState.COMPLETE, score=0.5)
    for x, layout, want in [(rng.normal(size=(60, 1, 3)), "sequence", "conv32 k3 relu > maxpool2 > conv64 k3"),
                            (rng.normal(size=(60, 1, 16)), "auto", "conv32 3x3 relu > conv64 3x3 relu")]:
        ds = make_dataset("seq", x, y, x[:9], y[:9], layout=layout)
        searched, base = retrain_best(best=best, space=space, data=ds, epochs=1, recipe=Recipe(batch_size=32),
                                      seed=0)
        assert searched.name == "searched" and base.name == "baseline" and base.description.startswith(want)
        assert base.description == baseline_description(ds.input_shape) and 0 <= base.test["accuracy"] <= 1


def test_the_cli_retrains_a_sequence_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.normal(size=(90, 1, 12)) + y[:, None, None]
    np.savez(tmp_path / "seq.npz", x_train=x[:72], y_train=y[:72], x_test=x[72:], y_test=y[72:])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"source": "npz", "path": str(tmp_path / "seq.npz"), "layout": "sequence"},
        "space": {"kind": "chain", "max_blocks": 2, "widths": [8], "kernels": [3], "types": ["conv", "dense"]},
        "strategy": {"name": "random"},
        "search": {"trials": 2, "budget": {"epochs": 1}, "measure_latency": False, "db": str(tmp_path / "s.db")},
        "retrain": {"epochs": 1}}))
    assert main(["search", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["retrain", str(tmp_path / "s.db"), "--epochs", "1"]) == 0
    out = capsys.readouterr()
    assert "internal error" not in out.err
    assert "conv32 k3 relu > maxpool2 > conv64 k3 relu > maxpool2 > dense128 relu" in out.out


# --------------------------------------------------------------------------- 15: dropout on the input


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 32)])
def test_dropout_on_the_input_never_blanks_whole_examples(shape: tuple[int, ...]) -> None:
    space = ChainSpace(types=("dropout", "conv", "dense"), dropout_rates=(0.5,), widths=(8,), kernels=(3,))
    sample = chain_sample(space, [{"type": "dropout", "rate": 0.5}, {"type": "conv", "width": 8},
                                  {"type": "dropout", "rate": 0.5}, {"type": "dense", "width": 8}])
    assert space.check(sample, shape) is None
    model = space.build(sample, shape, 10).train()
    torch.manual_seed(0)
    out = model[0](torch.ones(1000, *shape))
    blanked = int((out.flatten(1) == 0).all(1).sum())
    assert blanked == 0  # element-wise: 0.5 ** 64 per 8x8 image (was 500 of 1,000 as whole channels)
    assert 0.4 < float((out == 0).float().mean()) < 0.6
    # After a conv, the maps are the network's own: whole channels are dropped there, as before.
    drops = [type(m) for m in model if isinstance(m, nn.Dropout | nn.Dropout1d | nn.Dropout2d)]
    assert drops[0] is nn.Dropout and drops[1] in (nn.Dropout1d, nn.Dropout2d)


# ------------------------------------------------------------------------------- 20: horizontal flips


def test_sources_declare_whether_flips_keep_the_class(tmp_path: Path) -> None:
    assert load_dataset("digits").flip_invariant is False
    assert load_dataset("mnist", make_idx_dir(tmp_path / "m")).flip_invariant is False
    fashion = load_dataset("fashion_mnist", make_idx_dir(tmp_path / "f"))
    assert fashion.flip_invariant is True and fashion.search_view().flip_invariant is True
    assert load_dataset("fashion_mnist", tmp_path / "f", layout="tabular").flip_invariant is False
    assert load_dataset("idx", tmp_path / "f").flip_invariant is False  # a user's images: the user decides


def test_the_default_retrain_recipe_flips_only_declared_sources() -> None:
    recipe = RetrainConfig().recipe
    assert recipe.augment and recipe.flip is None
    assert recipe.flips(load_dataset("digits").flip_invariant) is False
    assert recipe.flips(True) is True
    assert Recipe(augment=True, flip=False).flips(True) is False and Recipe(flip=True).flips(False) is True


class Recorder(nn.Module):
    """A model that notes whether any training input showed the bright left column on the right."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 2)
        self.right = 0
        self.left = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.right += int((x[..., 4:] > 0).flatten(1).any(1).sum())
            self.left += int((x[..., :4] > 0).flatten(1).any(1).sum())
        return self.fc(x.flatten(1))


def flipped_during_training(data: Dataset, recipe: Recipe) -> bool:
    model = Recorder()
    fit_final(model, data, epochs=2, recipe=dataclasses.replace(recipe, channels_last=False), seed=0)
    assert model.left > 0
    return model.right > 0


def test_training_flips_only_where_the_source_or_the_user_allows() -> None:
    x = torch.zeros(64, 1, 8, 8)
    x[:, 0, 3, 0] = 1.0  # a bright pixel in the first column: the crop moves it 2 at most, a flip to the right
    y = torch.arange(64) % 2
    digits_like = Dataset("d", x[:48], y[:48], x[48:], y[48:], ("0", "1"))
    recipe = RetrainConfig().recipe
    assert not flipped_during_training(digits_like, recipe)
    assert flipped_during_training(dataclasses.replace(digits_like, flip_invariant=True), recipe)
    assert flipped_during_training(digits_like, dataclasses.replace(recipe, flip=True))
    assert flipped_during_training(digits_like, Recipe(flip=True))  # a flip alone, without the crop
    # Train() alone: no declaration given, no flip.
    model = Recorder()
    train(model, x, y, epochs=1, recipe=dataclasses.replace(recipe, channels_last=False))
    assert model.right == 0


def test_augment_batch_crops_and_flips_separately() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(augment_batch(x, gen, crop=False, flip=False), x)
    flipped = augment_batch(x.repeat(32, 1, 1, 1), gen, crop=False)
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x.repeat(32, 1, 1, 1),
                                                                                  strict=True))


def test_flip_in_the_config(tmp_path: Path) -> None:
    assert from_dict({"retrain": {"flip": True}}).retrain.recipe.flip is True
    assert from_dict({"retrain": {"flip": "auto"}}).retrain.recipe.flip is None
    assert from_dict({"train": {"flip": False, "augment": True}}).train.flip is False
    old = from_dict({"retrain": {"augment": True}}).retrain.recipe  # configs written before the flip key
    assert old.augment and old.flip is None
    with pytest.raises(ConfigError, match=r"retrain\.flip must be true, false or auto"):
        from_dict({"retrain": {"flip": "yes"}})
    with pytest.raises(ConfigError, match=r"train\.flip must be true, false or auto"):
        from_dict({"train": {"flip": 1}})
