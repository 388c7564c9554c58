"""Each declared setting (tvo.settings) reaches every place made from it: its flag of
``tvo train`` parses into the config, its TOML key is accepted, its keyword of ``tvo.fit`` is
accepted and recorded, and the documentation's table lists it; a new objective's new setting
gets all of these with no other edit."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tvo
from tvo import cli, config, settings
from tvo.config import SETTINGS, ConfigError, resolve

ROOT = Path(__file__).resolve().parents[1]
fit_module = importlib.import_module("tvo.fit")  # the module (tvo.fit is also the function)

# Per setting: a value other than its default (as the flag's text, and as the config holds it),
# and the settings it needs beside it. An objective's setting that is not listed gets one from
# its declaration (example()); every other setting must be listed.
EXAMPLES = {
    "model": ("linear_2", "linear_2", {}),
    "model_args": ('{"latents": 16}', {"latents": 16}, {"model": "gaussian"}),
    "objective": ("vimco", "vimco", {}),
    "data": ("mnist", "mnist", {}),
    "data_root": (str(ROOT), str(ROOT), {}),
    "particles": ("7", 7, {}),
    "partitions": ("3", 3, {}),
    "schedule": ("linear", "linear", {}),
    "beta1": ("0.3", 0.3, {}),
    "integration": ("trapz", "trapz", {}),
    "adapt_every": ("7", 7, {"schedule": "moments"}),
    "gamma": ("0.5", 0.5, {"objective": "ovis", "ovis_form": "asymptotic"}),  # OVIS~'s only
    "partition": ("0 0.3 1", [0.0, 0.3, 1.0], {}),
    "batch_size": ("7", 7, {}),
    "lr": ("0.01", 0.01, {}),
    "steps": ("7", 7, {}),
    "epochs": ("1.5", 1.5, {}),
    "seed": ("7", 7, {}),
    "device": ("cpu", "cpu", {}),
    "eval_every": ("7", 7, {}),
    "eval_particles": ("7", 7, {}),
    "eval_images": ("7", 7, {}),
    "eval_split": ("test", "test", {}),
    "log_every": ("7", 7, {}),
    "checkpoint_every": ("7", 7, {}),
    "nonfinite": ("stop", "stop", {}),
    "compile": (None, True, {"device": "cuda"}),  # cuda: no C++ compiler asked for
    "threads": ("2", 2, {}),
    "preset": ("continuous", "continuous", {}),
    "model_source": (None, "/somewhere/model.py", {"model": "somewhere.model:Model"}),
}


def example(name: str) -> tuple:
    """``EXAMPLES[name]``, or for an objective's setting not listed there a value other than
    its default, made from its declaration, with its first objective."""
    if name in EXAMPLES:
        return EXAMPLES[name]
    setting = SETTINGS[name]
    if setting.choices:
        value = next(c for c in setting.choices if c != setting.default)
    elif setting.kind is bool:
        value = not setting.default
    elif setting.kind is int:
        value = (setting.default or 0) + 1
    elif setting.kind is float:
        value = (setting.default or 1.0) / 2
    else:
        raise AssertionError(f"add an example of {name} to tests/test_settings.py's EXAMPLES")
    text = None if setting.kind is bool else str(value)
    return text, value, {"objective": setting.owner[0]}


def test_every_setting_has_an_example_and_a_row_in_the_documentation():
    common = {name for name, s in SETTINGS.items() if s.owner == ("run",)}
    assert common <= set(EXAMPLES) <= set(SETTINGS)
    page = (ROOT / "docs" / "settings.md").read_text()
    assert settings.markdown_table() in page, (  # the table is the declarations', up to date
        "docs/settings.md is out of date: replace its table with tvo.settings.markdown_table()"
    )
    for name in SETTINGS:
        assert f"| `{name}` |" in page, name


def flag_args(name: str, text) -> list[str]:
    setting = SETTINGS[name]
    return [setting.option] + ([] if text is None else [text])


@pytest.mark.parametrize("name", [n for n, s in SETTINGS.items() if s.flag])
def test_each_flag_parses_into_the_config(name):
    text, value, context = example(name)
    argv = ["train", *flag_args(name, text)]
    for other, (other_text, _, _) in ((n, example(n)) for n in context):
        argv += flag_args(other, str(context[other]) if other_text is not None else None)
    args = cli.parser().parse_args(argv)
    flags = {n: getattr(args, n) for n in cli.FLAG_FIELDS}
    resolved = config.resolve(args.preset, args.config, **flags)
    assert getattr(resolved, name) == value


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_each_toml_key_is_accepted(name, tmp_path):
    _, value, context = example(name)
    if name == "model_source":  # recorded, never imported here: a file that names it
        resolved = resolve(file=write_toml(tmp_path, {name: value}), check_model=False)
    else:
        resolved = resolve(file=write_toml(tmp_path, {name: value, **context}))
    assert getattr(resolved, name) == value


def write_toml(folder: Path, values: dict) -> Path:
    def toml(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + "}"
        return json.dumps(value)

    path = folder / "settings.toml"
    path.write_text("".join(f"{k} = {toml(v)}\n" for k, v in values.items()))
    return path


class Recorded(Exception):
    """Raised by a build that records the config ``fit`` resolved, in place of training."""


@pytest.mark.parametrize("keyword", sorted(fit_module.KEYWORDS))
def test_each_fit_keyword_is_accepted_and_reaches_the_config(keyword, monkeypatch, tmp_path):
    """What ``fit`` resolves is what ``Run.create`` writes to config.json (the test below
    checks that on a real run); here the build is stopped so that no run is trained."""
    name = fit_module.KEYWORDS[keyword]
    _, value, context = example(name)
    seen = {}

    def build(config, **_):
        seen["config"] = config
        raise Recorded

    monkeypatch.setattr(fit_module, "build", build)
    with pytest.raises(Recorded):
        tvo.fit(context.get("model", "linear_1"), "binarized-mnist",
                **{fit_module.SETTINGS[n].fit_keyword: v for n, v in context.items()
                   if n != "model"}, **{keyword: value}, out=tmp_path / "run")  # fmt: skip
    assert getattr(seen["config"], name) == value
    assert not (tmp_path / "run").exists()


def test_fit_records_its_keywords_in_the_run(tmp_path):
    data = _binary(64)
    keywords = {"num_particles": 3, "batch_size": 8, "lr": 0.002, "steps": 4, "seed": 5,
                "eval_every": 4, "eval_particles": 6, "eval_images": 4, "eval_split": "train",
                "log_every": 2, "checkpoint_every": 4, "nonfinite": "stop", "device": "cpu",
                "threads": 1, "partitions": 3, "schedule": "linear",
                "integration": "trapz"}  # fmt: skip
    result = tvo.fit("discrete_toy", data, "tvo", out=tmp_path / "run", quiet=True, **keywords)
    recorded = json.loads((result.run.path / "config.json").read_text())
    for keyword, value in keywords.items():
        assert recorded[fit_module.KEYWORDS[keyword]] == value, keyword


def _binary(n):
    import torch

    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 4, generator=g) < 0.4).float()


def test_fit_refuses_an_unknown_keyword_and_an_objective_setting_given_twice(tmp_path):
    with pytest.raises(TypeError, match="unexpected keyword argument 'particles'; its settings"):
        tvo.fit("linear_1", "binarized-mnist", particles=5, out=tmp_path / "a")
    with pytest.raises(ConfigError, match="partitions is a setting of the objective"):
        tvo.fit("linear_1", "binarized-mnist", tvo.TVO(K=3), partitions=4, out=tmp_path / "b")


def test_the_signature_of_fit_lists_every_keyword_with_its_default():
    import inspect

    parameters = inspect.signature(tvo.fit).parameters
    for keyword, name in fit_module.KEYWORDS.items():
        assert keyword in parameters, keyword
        if name not in config.OBJECTIVE_SETTINGS and name != "steps":
            assert parameters[keyword].default == SETTINGS[name].default, keyword


def test_each_declared_check_refuses_a_bad_value():
    """A wrong value of each checked setting is refused by its declaration, with its name."""
    bad = {"particles": 1, "partitions": 0, "beta1": 1.0, "adapt_every": 0, "batch_size": 0,
           "lr": 0.0, "steps": 0, "epochs": 0.0, "seed": -1, "eval_every": 0,
           "eval_particles": 0, "eval_images": 0, "log_every": 0, "checkpoint_every": 0,
           "device": "gpu", "eval_split": "dev", "nonfinite": "ignore", "schedule": "cubic",
           "integration": "simpson", "threads": 0, "compile": "yes", "data": 7,
           "model_args": [1], "partition": [0.0, 0.5, 0.5, 1.0]}  # fmt: skip
    values = resolve().to_dict()
    for name, value in bad.items():
        label = SETTINGS[name].label or name
        with pytest.raises(ConfigError, match=label.split(" (")[0]):
            SETTINGS[name].validate(value, values)
        with pytest.raises(ConfigError):
            resolve(**{name: value, **({"steps": None} if name == "epochs" else {})})


NEW_OBJECTIVE = """
import importlib, json
import tvo.objectives as objectives
from tvo.objectives import ELBO

class Alpha(ELBO):
    name = "alpha-test"
    settings = {"alpha": 0.5}

    @classmethod
    def from_settings(cls, seed=0, **settings):
        return cls()

objectives.OBJECTIVES["alpha-test"] = Alpha  # as if listed in tvo.objectives._CLASSES
from tvo import cli, config, settings
fit = importlib.import_module("tvo.fit")
for module in (config, fit, cli):  # made again from the registry, as at a first import
    importlib.reload(module)
args = cli.parser().parse_args(["train", "--objective", "alpha-test", "--alpha", "0.25"])
from_flag = config.resolve(**{n: getattr(args, n) for n in cli.FLAG_FIELDS}).alpha
open("a.toml", "w").write('objective = "alpha-test"\\nalpha = 0.75\\n')
from_toml = config.resolve(file="a.toml").alpha
default = config.resolve(objective="alpha-test").alpha
try:
    config.resolve(objective="vimco", alpha=0.3)
    refused = ""
except config.ConfigError as error:
    refused = str(error)
print(json.dumps({"flag": from_flag, "toml": from_toml, "default": default, "refused": refused,
                  "keyword": fit.KEYWORDS.get("alpha"), "table": "| `alpha` |" in
                  settings.markdown_table()}))
"""


def test_a_new_objectives_new_setting_gets_its_flag_key_keyword_and_row(tmp_path):
    """An objective registered with ``settings = {"alpha": 0.5}`` and nothing else. In a fresh
    process: the registry is read when tvo.config is imported, and importing tvo.objectives
    imports it, so the test adds the class, then loads config, fit and cli again."""
    result = subprocess.run([sys.executable, "-c", NEW_OBJECTIVE], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert (seen["flag"], seen["toml"], seen["default"]) == (0.25, 0.75, 0.5)
    assert seen["keyword"] == "alpha" and seen["table"]
    assert "alpha does not apply to objective 'vimco'" in seen["refused"]
    assert "alpha-test" in seen["refused"]
