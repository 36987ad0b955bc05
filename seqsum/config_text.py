"""Reading a config file's text: UTF-8 only, JSON or YAML (a safe loader that reads 1e-3 as a float and
refuses a key given twice), every failure a ConfigError naming the file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def read_config_text(path: Path, what: str) -> str:
    """The text of a config file; unreadable or not UTF-8 text raises ConfigError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text (byte {e.start}); give YAML or JSON") from None


def unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A mapping from (key, value) pairs that refuses a key given twice (JSON's and YAML's last-one-wins)."""
    out: dict[Any, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} is given twice")
        out[k] = v
    return out


def yaml_load(text: str) -> Any:
    """yaml.safe_load, except that 1e-3 is a float (PyYAML's YAML 1.1 rules read it as a string) and a
    key given twice in one mapping is an error (safe_load keeps the last silently)."""

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for k, _ in node.value if isinstance(node, yaml.MappingNode) else ():
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    key = self.construct_object(k)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", k.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )
    return yaml.load(text, Loader=Loader)  # a SafeLoader subclass
