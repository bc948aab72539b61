"""The documentation tells the truth: every message docs/troubleshooting.md quotes is one the
package prints, and every environment variable the package reads is in the README."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "\n".join(path.read_text() for path in sorted((ROOT / "src" / "fcnseg").rglob("*.py")))
# The source with adjacent string literals joined ("abc " f"{x} def" -> abc {x} def), as Python joins them.
JOINED = re.sub(r"""["']\s*\n?\s*f?["']""", "", SOURCE)
# What a quoted message has in place of a value: a file, a number, a size, a list.
PLACEHOLDER = re.compile(r"\.\.\.|\[\.\.\.\]|\b(?:X|Y|N|M|E|B|S|URL|HxW|WxH)\b|'x'")


def quoted_messages() -> list[str]:
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return [quote for row in rows for quote in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


@pytest.mark.parametrize("message", quoted_messages())
def test_each_quoted_message_is_one_the_code_prints(message):
    fragments = [f.strip(" .,;:'(") for f in PLACEHOLDER.split(message)]
    missing = [f for f in fragments if len(f) >= 4 and f not in JOINED]
    assert not missing, f"docs/troubleshooting.md quotes {message!r}, but the code never prints {missing}"


def test_every_environment_variable_the_code_reads_is_in_the_readme():
    code = "\n".join(line for line in SOURCE.splitlines() if not line.lstrip().startswith(">>>"))
    reads = r"""(?:environ\.get\(|environ\.setdefault\(|environ\[|root_env=|_ENV = |imagenet_or_file\([^,]+, )"""
    names = set(re.findall(reads + r"""["']([A-Z][A-Z0-9_]+)["']""", code))
    assert {"VOC_ROOT", "VOC2012_ROOT", "CAMVID_ROOT", "SBD_ROOT", "FCN_BACKBONE_WEIGHTS", "TF_CONFIG"} <= names
    readme = (ROOT / "README.md").read_text()
    assert not sorted(name for name in names if f"`{name}`" not in readme), "name them in README.md"
