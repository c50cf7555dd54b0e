"""Classify a CI console log: did the push fail in a way a registry prune can fix?

Only ``registry-500`` and ``registry-disk-full`` are worth a prune. When a log
shows several failures, the first rule that matches wins:

1. ``registry-disk-full``: "no space left on device" that came from the
   registry: on the same line as its JSON error body, ``err.detail=``, the
   storage driver's ``filesystem:`` prefix, a registry storage path or an HTTP
   status. It explains a 500, so it beats one.
2. ``agent-disk-full``: "no space left on device" with local evidence (a path
   under /var/lib/docker, /tmp or a workspace, ``failed to register layer``,
   ``[Errno 28]``, ``failed to solve``...). It beats a 500: a full agent fails
   the retried build or push whatever the registry frees, so we do not prune.
3. ``registry-500``: the registry answered 500 to a push.
4. ``agent-disk-full``: an unmarked "no space left on device". Registry errors
   reach the client wrapped in an HTTP status, so a bare one is local; it loses
   to a 500 because nothing ties it to the agent's disk.
5. ``auth``: 401/403, access denied, missing credentials.
6. ``network``: refused, DNS, TLS, timeouts, 502/503/504 from a proxy.
7. ``unknown``.

The evidence is the last line matching the winning rule: a CI log ends with
the error that failed the build.

Scanning is two-stage so a 50 MB log takes about a second: each chunk is
lower-cased and searched for literal keywords with ``str.find`` (C speed; a
case-insensitive regex over the whole text is twenty times slower), and only
the lines holding a keyword go through the regular expressions, and only the
families of expressions those keywords call for.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path
from typing import IO, Iterable, Iterator

CHUNK_CHARS = 4 * 1024 * 1024
MAX_LINE_CHARS = 1024 * 1024  # a longer run without a newline is scanned as a line of its own
LONG_LINE_CHARS = 16 * 1024  # longer lines are read in windows around their keywords
WINDOW_BEFORE_CHARS = 256  # short, so the evidence (cut at EVIDENCE_CHARS) still shows the match
WINDOW_AFTER_CHARS = 2048
EVIDENCE_CHARS = 500
EVIDENCE_CONTEXT_CHARS = 150  # shown before the deciding match when a line is cut


class Category(str, Enum):
    """What failed. The values are stable: they appear in JSON reports."""

    REGISTRY_500 = "registry-500"
    REGISTRY_DISK_FULL = "registry-disk-full"
    AGENT_DISK_FULL = "agent-disk-full"
    AUTH = "auth"
    NETWORK = "network"
    UNKNOWN = "unknown"

    @property
    def prune_can_help(self) -> bool:
        return self in (Category.REGISTRY_500, Category.REGISTRY_DISK_FULL)


@dataclass(frozen=True, slots=True)
class Classification:
    category: Category
    explanation: str  # one sentence for the operator
    evidence: str | None = None  # the deciding log line, without timestamp and colours
    line: int | None = None  # 1-based line number of the evidence
    also_seen: tuple[Category, ...] = ()  # other categories found, by precedence
    lines_scanned: int = 0

    @property
    def prune_can_help(self) -> bool:
        return self.category.prune_can_help


class _Signal(IntEnum):
    """Per-line findings; the lower value wins (the precedence in the module docstring)."""

    REGISTRY_DISK = 1
    LOCAL_DISK = 2
    STATUS_500 = 3
    UNMARKED_DISK = 4
    AUTH = 5
    NETWORK = 6


_CATEGORY = {
    _Signal.REGISTRY_DISK: Category.REGISTRY_DISK_FULL,
    _Signal.LOCAL_DISK: Category.AGENT_DISK_FULL,
    _Signal.STATUS_500: Category.REGISTRY_500,
    _Signal.UNMARKED_DISK: Category.AGENT_DISK_FULL,
    _Signal.AUTH: Category.AUTH,
    _Signal.NETWORK: Category.NETWORK,
}

_EXPLANATIONS: dict[_Signal | None, str] = {
    _Signal.REGISTRY_DISK: "The registry reported that its own storage is full; deleting old tags and running "
    "garbage collection frees space for the push.",
    _Signal.LOCAL_DISK: "The build agent ran out of disk space; pruning the registry cannot help, free space on "
    "the agent (docker system prune, old workspaces).",
    _Signal.STATUS_500: "The registry answered 500 Internal Server Error to the push, on a self-hosted registry "
    "most often a full disk, which pruning and garbage collection can fix.",
    _Signal.UNMARKED_DISK: "A tool on the agent ran out of disk space and nothing ties it to the registry, so "
    "pruning the registry cannot help; free space on the agent.",
    _Signal.AUTH: "The registry refused the credentials (401/403 or access denied); pruning cannot help, fix the "
    "Jenkins credentials or the registry's access rules.",
    _Signal.NETWORK: "The registry could not be reached (connection, DNS, TLS, timeout or a 502/503/504 from a "
    "proxy); pruning cannot help.",
    None: "No registry push failure this tool recognises was found in the log; pruning is not known to help.",
}

# Lower-case literals; a line is examined only if it holds one of them, and only by the pattern
# families whose words it holds. Every alternative of a family's patterns contains one of its words.
_STATUS, _ERROR_500, _DISK, _AUTH_WORDS, _NETWORK_WORDS = 1, 2, 4, 8, 16
_ALL_FAMILIES = 31
_KEYWORDS: tuple[tuple[str, int], ...] = (
    *((word, _STATUS) for word in ("unexpected", "statuscode", "invalid status code")),
    *((word, _ERROR_500) for word in ("internal server error", "unknown error")),
    *((word, _DISK) for word in ("space left", "enough space", "quota exceeded")),
    *(
        (word, _AUTH_WORDS)
        for word in (
            "unauthorized",
            "denied",
            "forbidden",
            "credentials",
            "authentication required",
            "insufficient_scope",
            "incorrect username",
        )
    ),
    *(
        (word, _NETWORK_WORDS)
        for word in (
            "refused",
            "timeout",
            "timed out",
            "no such host",
            "canceled",
            "reset by peer",
            "unreachable",
            "route to host",
            "deadline exceeded",
            "x509",
            "https client",
            "name resolution",
            "resolve host",
            "bad gateway",
            "service unavailable",
            "gateway time",
        )
    ),
)

# The line patterns run on lower-cased text: re.IGNORECASE is several times slower.
#
# docker/skopeo "received unexpected HTTP status: 500 ...", buildkit/containerd "unexpected status from PUT
# request to https://...: 500 ...", containers/image "StatusCode: 500, ...", "invalid status code from registry 500".
_STATUS_PREFIX = (
    r"(?:unexpected (?:http )?status(?: code)?(?: from [a-z]+ request to \S+)?|statuscode|unexpected http code"
    r"|invalid status code from registry):? "
)
_HTTP_STATUS = re.compile(_STATUS_PREFIX + r"(?P<code>\d{3})\b")
# distribution's errcode UNKNOWN is what it sends with a 500, as text or as a (maybe escaped) JSON body.
_REGISTRY_500 = re.compile(r'\bunknown: unknown error\b|\\?"code\\?"\s*:\s*\\?"unknown\\?"')
# A bare "500 Internal Server Error" counts only next to push vocabulary: Maven, curl and friends print it too.
_BARE_500 = re.compile(r"\b500 internal server error\b")
_PUSH_CONTEXT = re.compile(r"\bpush|\bupload|\bblobs?\b|\bmanifests?\b|/v2/|\bregistry\b|\blayer")

_NO_SPACE = re.compile(r"no space left on device|not enough space on the disk|disk quota exceeded")
_REGISTRY_SIDE = re.compile(
    r'\\?"(?:errors|detail)\\?"\s*:'  # the registry's JSON error body, echoed or escaped
    r"|\berr\.detail="  # the registry's own log line
    r"|\bfilesystem: "  # distribution's filesystem storage driver wraps its errors so
    r"|/var/lib/registry\b|docker/registry/v2/|\bstoragedriver\b"
    r"|" + _STATUS_PREFIX + r"\d{3}"  # it arrived as an HTTP answer
    r"|\b5\d\d internal server error\b|\bunknown: unknown error\b",
)
_LOCAL_SIDE = re.compile(
    r"/var/lib/(?:docker|containerd|buildkit|containers)/|/var/tmp/|/tmp/|/home/|/workspace|jenkins_home|\b[a-z]:\\"
    r"|failed to register layer|error processing tar file|failed to solve|error response from daemon"
    r"|\[errno 28\]|\benospc\b|ioexception|filesystemexception|write error|cannot write|cannot create temp"
    r"|not enough space on the disk",
)
_AUTH = re.compile(
    r"\bunauthorized\b|(?<!permission )\bdenied\b|\bforbidden\b|no basic auth credentials|authentication required"
    r"|insufficient_scope|incorrect username or password",
)
_NETWORK = re.compile(
    r"connection refused|i/o timeout|no such host|tls handshake timeout|request canceled|connection reset by peer"
    r"|network is unreachable|no route to host|client\.timeout exceeded|context deadline exceeded"
    r"|connection timed out|operation timed out|x509: |server gave http response to https client"
    r"|temporary failure in name resolution|could not resolve host"
    r"|\b50[234] (?:bad gateway|service unavailable|gateway time-?out)\b",
)
_LOCAL_SOCKET = re.compile(r"docker\.sock|dial unix")  # the local daemon, not the registry

# Colours, cursor moves, and Jenkins' hidden console notes (ESC[8m ha:////... ESC[0m).
_ANSI = re.compile(r"\x1b\[8mha:\S*?\x1b\[0m|\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
# Jenkins timestamper "[2024-01-02T03:04:05.123Z] " or "12:34:56 ", and ISO prefixes from other runners.
_TIMESTAMP = re.compile(
    r"^\s*(?:\[\s*\d{4}-\d\d-\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?\s*\]"
    r"|\d{4}-\d\d-\d\d[T ][\d:.,]+(?:Z|[+-]\d\d:?\d\d)?"
    r"|\[?\d\d:\d\d:\d\d(?:[.,]\d+)?\]?)\s+"
)


@functools.lru_cache(maxsize=4096)  # retry loops repeat the same line thousands of times
def _line_signals(line: str, families: int = _ALL_FAMILIES) -> tuple[tuple[_Signal, int], ...]:
    """What one lower-cased, colour-free log line says, each signal with the offset of the text saying it."""
    found: list[tuple[_Signal, int]] = []
    no_space = _NO_SPACE.search(line) if families & _DISK else None
    registry_disk = False
    if no_space:
        if _REGISTRY_SIDE.search(line):
            registry_disk = True  # it also explains this line's own 500
            found.append((_Signal.REGISTRY_DISK, no_space.start()))
        elif _LOCAL_SIDE.search(line):
            found.append((_Signal.LOCAL_DISK, no_space.start()))
        else:
            found.append((_Signal.UNMARKED_DISK, no_space.start()))
    for match in _HTTP_STATUS.finditer(line) if families & _STATUS else ():
        code = int(match.group("code"))
        if code == 500 and not registry_disk:
            found.append((_Signal.STATUS_500, match.start()))
        elif code in (401, 403):
            found.append((_Signal.AUTH, match.start()))
        elif code in (502, 503, 504):
            found.append((_Signal.NETWORK, match.start()))
    if families & _ERROR_500 and not registry_disk:
        unknown = _REGISTRY_500.search(line)
        bare = _BARE_500.search(line)
        if unknown:
            found.append((_Signal.STATUS_500, unknown.start()))
        elif bare and _PUSH_CONTEXT.search(line):
            found.append((_Signal.STATUS_500, bare.start()))
    auth = _AUTH.search(line) if families & _AUTH_WORDS else None
    if auth:
        found.append((_Signal.AUTH, auth.start()))
    network = _NETWORK.search(line) if families & _NETWORK_WORDS else None
    if network and not _LOCAL_SOCKET.search(line):
        found.append((_Signal.NETWORK, network.start()))
    return tuple(found)


def clean_line(line: str) -> str:
    """A log line as evidence: no colours, no timestamp prefix, trimmed."""
    text = _ANSI.sub("", line) if "\x1b" in line else line
    for _ in range(2):  # "[2024-...Z] 12:34:56 " has two
        text = _TIMESTAMP.sub("", text, count=1)
    return text.replace("\r", " ").strip()


def _evidence(line: str, focus: int) -> str:
    """The whole line if short, else EVIDENCE_CHARS of it around ``focus`` (the deciding match)."""
    text = clean_line(line)
    if len(text) <= EVIDENCE_CHARS:
        return text
    focus = max(0, focus - max(0, line.replace("\r", " ").find(text)))  # cleaning removed a prefix
    width = EVIDENCE_CHARS - 2  # room for the ellipses
    start = max(0, min(focus - EVIDENCE_CONTEXT_CHARS, len(text) - width))
    excerpt = text[start : start + width]
    return ("…" if start > 0 else "") + excerpt + ("…" if start + width < len(text) else "")


@dataclass
class _Findings:
    lines: int = 0  # newlines seen so far
    counts: dict[_Signal, int] = field(default_factory=dict)
    last: dict[_Signal, tuple[int, str, int]] = field(default_factory=dict)  # signal -> (line number, line, focus)

    def scan_block(self, block: str) -> None:
        """Scan text that ends at a line boundary (or at a forced cut of an over-long line)."""
        if "\x1b" in block:
            block = _ANSI.sub("", block)
        lower = block.lower()
        if len(lower) != len(block):  # only U+0130 grows when lower-cased; keep offsets aligned
            block = block.replace("\u0130", "I")
            lower = block.lower()
        hits: dict[int, list[int]] = {}  # line start -> offsets of its first hit per keyword
        families: dict[int, int] = {}  # line start -> the pattern families its keywords call for
        for keyword, family in _KEYWORDS:
            at = lower.find(keyword)
            while at != -1:
                line_start = lower.rfind("\n", 0, at) + 1
                hits.setdefault(line_start, []).append(at)
                families[line_start] = families.get(line_start, 0) | family
                end = lower.find("\n", at)
                if end == -1:
                    break
                at = lower.find(keyword, end)
        counted_to = 0
        number = self.lines
        for start in sorted(hits):
            number += block.count("\n", counted_to, start)
            counted_to = start
            end = block.find("\n", start)
            end = len(block) if end == -1 else end
            if end - start <= LONG_LINE_CHARS:
                spans, wanted = [(start, end)], families[start]
            else:  # progress bars joined by \r, a blob: read around each keyword, not a megabyte of text
                spans, wanted = [self._window(block, start, end, at) for at in hits[start]], _ALL_FAMILIES
            seen: set[_Signal] = set()
            for left, right in spans:
                for signal, focus in _line_signals(lower[left:right], wanted):
                    if signal not in seen:
                        seen.add(signal)
                        self.counts[signal] = self.counts.get(signal, 0) + 1
                        self.last[signal] = (number + 1, block[left:right], focus)
        self.lines += block.count("\n")

    @staticmethod
    def _window(block: str, start: int, end: int, at: int) -> tuple[int, int]:
        """The \r-delimited span around offset ``at``, at most a little before it and more after."""
        left = max(start, at - WINDOW_BEFORE_CHARS, block.rfind("\r", start, at) + 1)
        cr = block.find("\r", at, end)
        return left, min(end, at + WINDOW_AFTER_CHARS, end if cr == -1 else cr)

    def result(self, *, partial_last_line: bool) -> Classification:
        scanned = self.lines + (1 if partial_last_line else 0)
        signals = sorted(self.counts)
        if not signals:
            return Classification(Category.UNKNOWN, _EXPLANATIONS[None], lines_scanned=scanned)
        winner = signals[0]
        also: list[Category] = []
        for signal in signals[1:]:
            category = _CATEGORY[signal]
            if category != _CATEGORY[winner] and category not in also:
                also.append(category)
        number, line, focus = self.last[winner]
        return Classification(
            _CATEGORY[winner],
            _EXPLANATIONS[winner],
            evidence=_evidence(line, focus),
            line=number,
            also_seen=tuple(also),
            lines_scanned=scanned,
        )


def classify_chunks(chunks: Iterable[str]) -> Classification:
    """Classify a log arriving as text chunks of any size (split anywhere)."""
    findings = _Findings()
    carry = ""
    for chunk in chunks:
        text = carry + chunk if carry else chunk
        cut = text.rfind("\n") + 1
        if cut == 0:
            if len(text) < MAX_LINE_CHARS:
                carry = text
                continue
            cut = len(text)
        findings.scan_block(text[:cut])
        carry = text[cut:]
    if carry:
        findings.scan_block(carry)
    return findings.result(partial_last_line=bool(carry))


def _slices(text: str) -> Iterator[str]:
    for start in range(0, len(text), CHUNK_CHARS):
        yield text[start : start + CHUNK_CHARS]


def classify_text(text: str) -> Classification:
    return classify_chunks(_slices(text))


def classify_stream(stream: IO[str]) -> Classification:
    """Read and classify a text stream chunk by chunk; memory stays bounded."""
    return classify_chunks(iter(lambda: stream.read(CHUNK_CHARS), ""))


def classify_file(path: str | Path) -> Classification:
    """Classify a log file; undecodable bytes are replaced, never fatal."""
    with open(path, encoding="utf-8", errors="replace", newline="") as stream:
        return classify_stream(stream)
