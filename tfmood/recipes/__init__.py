"""Recipes: published systems as Python configs, one module per system run (style rule 5).

    from tfmood import recipes
    cfg = recipes.get("cpjku2019-faresnet")               # a validated TrainConfig with the paper's settings
    cfg = recipes.get("cpjku2019-faresnet", smoke=True)   # shrunk for a CI smoke run on the demo data
    python -m tfmood.train --recipe cpjku2019-faresnet --data records/jamendo-mel [--epochs 10 ...]
    python -m tfmood.train --list-recipes

Each module holds `NAME`, `PUBLISHED` (the official test scores of the run it reproduces), `SETTINGS` (each
setting with where it comes from: the code, the paper, both or neither, and why; `base.Setting`) and
`get_config(smoke=False) -> TrainConfig`; its docstring gives the source paper, the commands and the settings in
prose, with what the public material leaves open marked [UNVERIFIED]. Modules are registered below by import;
`docs/recipes.md` lists them, with the settings tables that `markdown()` writes.
"""

import importlib

from tfmood.recipes.base import SOURCES, settings_markdown
from tfmood.registry import Registry
from tfmood.training.config import TrainConfig

RECIPES = Registry("recipe")

MODULES = ("hcmus2020_mel_effb0", "hcmus2020_wavenet_mobilenetv2", "hcmus2020_wavenet_effb7",
           "selab2021_coteach_effb0_rexnet", "cpjku2019_faresnet", "cpjku2019_shake_faresnet", "cpjku2019_resnet34",
           "cpjku2019_crnn", "amlag2019_mobilenetv2", "amlag2019_attention", "uai2020_resnet34_attention",
           "taiinn2019_vqvae_gru", "taiinn2019_vqvae_cnn", "mtg_vggish_baseline")

for _module in MODULES:
    _recipe = importlib.import_module(f"{__name__}.{_module}")
    RECIPES.register(_recipe.NAME)(_recipe)


def get(name: str, smoke: bool = False) -> TrainConfig:
    """The validated `TrainConfig` of recipe `name`; unknown names raise `LookupError` listing the known ones."""
    return RECIPES.get(name).get_config(smoke=smoke).validate()


def names() -> list:
    return RECIPES.names()


def published(name: str):
    """The `Published` scores of recipe `name`."""
    return RECIPES.get(name).PUBLISHED


def describe() -> dict:
    """name -> one line: published scores and the first line of the recipe's docstring (`--list-recipes`)."""
    return {name: f"{RECIPES.get(name).PUBLISHED.line()}  {RECIPES.describe()[name]}" for name in names()}


def settings(name: str) -> tuple:
    """The `Setting`s of recipe `name`: what each follows (code, paper, both, neither) and why."""
    return tuple(RECIPES.get(name).SETTINGS)


def markdown() -> str:
    """The settings section of docs/recipes.md (tests/test_recipes.py checks the file holds exactly this)."""
    legend = "\n".join(f"- **{source}**: {meaning}" for source, meaning in SOURCES.items())
    tables = "\n".join(settings_markdown(name, settings(name)) for name in names())
    return f"Sources:\n{legend}\n\n{tables}"
