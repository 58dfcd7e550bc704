"""Every convert option is declared once (``oakpipe.options.CONVERT_OPTIONS``) and reaches the
same ConvertOptions value from each entry point: a CLI flag, a config-file key and an API
keyword. The examples are keyed by the declared names, so a new option fails here until it
has one, and then must work in all three places."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from oakpipe.api import convert_options as api_options
from oakpipe.cli import build_parser
from oakpipe.cli import convert_options as cli_options
from oakpipe.options import CONVERT_OPTIONS, ConvertOptions


def examples(folder: Path) -> dict[str, tuple[Any, list[str], Any, Any]]:
    """name -> (API value, command-line words, YAML value, the value ConvertOptions holds)."""
    for name in ("w.pt", "style.png", "photo.png"):
        (folder / name).write_bytes(b"")
    (folder / "labels.txt").write_text("cat\ndog\n")  # read as the option is checked: names, not empty
    (folder / "weights").mkdir()
    path = lambda name: (str(folder / name), [str(folder / name)], str(folder / name), folder / name)  # noqa: E731
    return {
        "input_shape": ("1,3,64,96", ["1,3,64,96"], [1, 3, 64, 96], (1, 3, 64, 96)),
        "opset": (13, ["13"], 13, 13),
        "mean_values": ([1, 2, 3], ["1,2,3"], [1.0, 2.0, 3.0], (1.0, 2.0, 3.0)),
        "scale_values": ("imagenet", ["imagenet"], "imagenet", (58.395, 57.12, 57.375)),
        "reverse_input_channels": (False, ["--no-reverse-input-channels"], "RGB", False),
        "shaves": (8, ["8"], 8, 8),
        "weights": path("w.pt"),
        "style": path("style.png"),
        "alpha": (0.5, ["0.5"], 0.5, 0.5),
        "weights_dir": path("weights"),
        "out": path("export"),
        "use_cache": (False, [], False, False),
        "verify": (False, [], False, False),
        "image": path("photo.png"),
        "compile_timeout": (30.0, ["30"], 30, 30.0),
        "tolerance": ("fp16=30", ["fp16=30"], "fp16=30", "fp16=30"),
        "compiler": ("blobconverter", ["blobconverter"], "blobconverter", "blobconverter"),
        "task": ("classify", ["classify"], "classify", "classify"),
        "labels": path("labels.txt"),
    }


def command_line(flag: str, words: list[str]) -> list[str]:
    """``--opset 13``; a flag of its own (``--no-reverse-input-channels``) stands alone."""
    return words if words and words[0].startswith("--") else [flag, *words]


def held(options: ConvertOptions, target: str) -> Any:
    """The value an option's target names (``preprocessing.mean`` included)."""
    value: Any = options
    for part in target.split("."):
        value = getattr(value, part)
    return value


def test_every_declared_option_has_an_example(tmp_path):
    assert list(examples(tmp_path)) == [option.name for option in CONVERT_OPTIONS]


@pytest.mark.parametrize("option", CONVERT_OPTIONS, ids=lambda option: option.name)
def test_each_option_is_a_cli_flag_a_yaml_key_and_an_api_keyword(tmp_path, option):
    api_value, words, yaml_value, expected = examples(tmp_path)[option.name]
    default = held(ConvertOptions(model="halve"), option.target)
    assert expected != default  # else the three checks below could not tell the option was read

    typed = cli_options(build_parser().parse_args(["convert", "halve", *command_line(option.flag, words)]))
    assert held(typed, option.target) == expected, f"{option.flag} did not set {option.target}"

    section: dict[str, Any] = {"input_model": "halve"}
    *parents, key = option.yaml.split(".")
    node = section
    for parent in parents:
        node = node.setdefault(parent, {})
    node[key] = yaml_value
    config = tmp_path / "oakpipe.yaml"
    config.write_text(yaml.safe_dump(section))
    assert held(api_options(None, config=config), option.target) == expected, f"{option.yaml} was not read"

    keyword = api_options("halve", **{option.name: api_value})
    assert held(keyword, option.target) == expected, f"keyword {option.name} did not set {option.target}"
    contract = option.contract
    if contract is not None:  # given, so not a default the model's declaration may replace
        assert contract not in typed.contract_defaults and contract not in keyword.contract_defaults

