"""The docs against the code: every count a doc states, every number it
quotes the code printing and every file it names, checked where the code
or the repository can answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from client.summary import judge
from tests.conftest import GoServer
from tests.stack import ROOT, compose

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
NUMBERS = {word: n for n, word in enumerate(WORDS)}


def text(doc: Path) -> str:
    """A doc with its lines joined, so a phrase may span a line break."""
    return re.sub(r"\s*\n\s*", " ", doc.read_text())


def number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word.lower()]


def found(pattern: str) -> list[tuple[str, str]]:
    """(doc, the captured group) for every match of pattern in every doc."""
    return [(doc.name, m.group(1)) for doc in DOCS for m in re.finditer(pattern, text(doc), re.I)]


def test_the_docs_count_the_compose_services() -> None:
    services = len(compose()["services"])
    word = "|".join(NUMBERS)
    counts = found(rf"\b({word}|\d+) (?:services|containers)\b") + found(rf"\ball ({word}|\d+) run\b")
    assert counts, "no doc counts the services"
    wrong = [(doc, n) for doc, n in counts if number(n) != services]
    assert not wrong, f"docs/README count other than the {services} services of docker-compose.yml: {wrong}"


@pytest.fixture(scope="module")
def accepted_codes(server_binary: Path) -> list[int]:
    """The codes the real server accepts on POST /status/{code}."""
    server = GoServer(server_binary)
    try:
        with requests.Session() as s:
            return [c for c in range(100, 600) if s.post(f"{server.url}/status/{c}", timeout=5).status_code != 400]
    finally:
        server.stop()


def test_the_docs_count_the_accepted_codes(accepted_codes: list[int]) -> None:
    """Every "N codes" is the server's count, but the original's fixed list
    "without 425 Too Early"."""
    n = len(accepted_codes)
    counts = 0
    for doc in DOCS:
        for sentence in re.split(r"(?<=[.;:|])\s", text(doc)):
            for m in re.finditer(r"\b(\d+) (?:named )?codes\b|\bcode out of (\d+)\b", sentence):
                said = int(m.group(1) or m.group(2))
                want = n - 1 if "without 425" in sentence else n
                assert said == want, f"{doc.name}: {m.group(0)!r}, where the server accepts {n}: {sentence}"
                counts += 1
    assert counts, "no doc counts the codes: the pattern no longer matches them"


def test_the_docs_list_the_accepted_codes(accepted_codes: list[int]) -> None:
    """docs/server.md lists the codes as ranges ("100-103, 200-208, ...")."""
    (listing,) = re.findall(r"in Go [\d.]+: ([\d\-, ]+)\.", text(ROOT / "docs/server.md"))
    listed: list[int] = []
    for part in listing.split(", "):
        first, _, last = part.partition("-")
        listed += range(int(first), int(last or first) + 1)
    assert listed == accepted_codes


def test_the_share_of_5xx_codes(accepted_codes: list[int]) -> None:
    fives = [c for c in accepted_codes if c >= 500]
    shares = found(r"\b(\d+) of them 5xx\b")
    assert shares, "no doc gives the share of 5xx codes: the pattern no longer matches it"
    for doc, said in shares:
        assert int(said) == len(fives), doc
    for doc, pct in found(r"\b\d+ of them 5xx \((\d+) ?%\)"):
        assert int(pct) == round(100 * len(fives) / len(accepted_codes)), doc


def printable(reason: str, probes_up_to: int = 20) -> bool:
    """Whether the client's verdict can give reason with a window of at
    most probes_up_to probes."""
    return any(judge(n, 100 * ok / n, 0.0)[1] == reason for n in range(1, probes_up_to + 1) for ok in range(n + 1))


def test_sample_verdicts_are_ones_the_client_prints() -> None:
    reasons = found(r"(availability [\d.]+% < \d+%)")
    assert reasons
    wrong = [(doc, r) for doc, r in reasons if not printable(r)]
    assert not wrong, f"the client never prints these: {wrong}"


#: A path in backquotes or a Markdown link: relative, with a file name or
#: a trailing slash.
QUOTED = re.compile(r"`([\w.\-]+(?:/[\w.\-*]+)+/?)`|\]\(((?:\.\./)?[\w.\-]+(?:/[\w.\-]+)*/?)(?:#[\w\-]*)?\)")
#: Paths of the containers and of generated or local files, not the repository's.
ELSEWHERE = ("dist/", "bin/", ".cache/", ".venv/", "node_modules/")
#: Files a doc names as an example of a name, not as a file of the repository.
EXAMPLES = {"prometheus/rules/slo_availability.yml"}  # docs/kubernetes.md: how a file name becomes an object name


def quoted_paths(doc: Path) -> list[Path]:
    """The repository paths doc names: links relative to the doc, quoted
    paths relative to the repository's root."""
    paths = []
    for m in QUOTED.finditer(doc.read_text()):
        if m.group(2):
            paths.append(doc.parent / m.group(2))
        elif m.group(1) in EXAMPLES or m.group(1).startswith(ELSEWHERE):
            continue
        elif (ROOT / m.group(1).split("/")[0]).is_dir():
            paths.append(ROOT / m.group(1))  # else an image (grafana/tempo), a URL path, a MIME type
    return paths


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_named_files_exist(doc: Path) -> None:
    paths = quoted_paths(doc)
    missing = [p for p in paths if not (list(p.parent.glob(p.name)) if "*" in p.name else p.exists())]
    assert not missing, f"{doc.name} names files that do not exist: {[str(p.relative_to(ROOT)) for p in missing]}"


@pytest.mark.parametrize("doc", ["README.md", "docs/stack.md"])
def test_the_docs_name_the_pinned_images(doc: str) -> None:
    pinned = {s["image"] for s in compose()["services"].values() if "build" not in s}
    named = set(re.findall(r"`([\w./-]+:[\w.-]+)`", (ROOT / doc).read_text()))
    assert pinned <= named, f"{doc} does not name {pinned - named}"
    stale = {i for i in named if i.split(":")[0] in {p.split(":")[0] for p in pinned}} - pinned
    assert not stale, f"{doc} names images the compose file no longer pins: {stale}"
