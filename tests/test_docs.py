"""The documentation tells the truth: every message docs/troubleshooting.md quotes is one the
package prints, every environment variable the package reads is in docs/environment.md (which the
README links to), every relative link and image of README.md and docs/*.md leads to a file (and
heading) that exists, and the README fits on one screen with its commands first."""

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


def test_every_environment_variable_the_code_reads_is_in_docs_environment():
    code = "\n".join(line for line in SOURCE.splitlines() if not line.lstrip().startswith(">>>"))
    reads = r"""(?:environ\.get\(|environ\.setdefault\(|environ\[|root_env=|_ENV = |imagenet_or_file\([^,]+, )"""
    names = set(re.findall(reads + r"""["']([A-Z][A-Z0-9_]+)["']""", code))
    assert {"VOC_ROOT", "VOC2012_ROOT", "CAMVID_ROOT", "SBD_ROOT", "FCN_BACKBONE_WEIGHTS", "TF_CONFIG"} <= names
    page = (ROOT / "docs" / "environment.md").read_text()
    assert not sorted(name for name in names if f"`{name}`" not in page), "name them in docs/environment.md"
    assert "(docs/environment.md)" in (ROOT / "README.md").read_text(), "link docs/environment.md from the README"


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)  # fenced code blocks: no links there
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target) and ![alt](target)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a Markdown page's headings: lower case, punctuation dropped,
    spaces to hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", FENCE.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def broken_links(page: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text()))  # nor in inline code
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not a file of the repository
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no such heading)")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_image_leads_to_a_file(page):
    assert not (broken := broken_links(page)), f"{page.relative_to(ROOT)} links to what does not exist: {broken}"


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.md").write_text("# A heading: here\n")
    page = tmp_path / "page.md"
    page.write_text("[a](there.md#a-heading-here) [b](missing.md) ![c](img/none.png) [d](there.md#nowhere)\n"
                    "[e](https://example.org/x) `[f](code.md)`\n```\n[g](fenced.md)\n```\n")
    assert broken_links(page) == ["missing.md", "img/none.png", "there.md#nowhere (no such heading)"]


def test_the_readme_fits_on_one_screen_with_its_commands_first():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move the details to docs/"
    top = "\n".join(lines[:25])
    for command in ("python3 -m pip install -r requirements-dev.txt", "python3 -m pytest -q",
                    "python3 -m papermill semantic_segmentation_fcn32.ipynb results/run.out.ipynb"):
        assert command in top, f"README.md's first 25 lines lack {command!r}"
