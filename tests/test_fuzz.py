"""Coverage-guided fuzzing of every reader of untrusted bytes: any input ends in a result or a typed InputError.

Targets: the EDIFACT/X12 readers (``edi.read``, ``edi.iter_messages``) with structure validation,
the XML reader (``parse_xml``/``identify``), the AS2 MIME/CMS parser (``gateway.as2.parse``), the
MDN reader (``parse_mdn``) and the mapping engine (``pipeline.process`` on a deployment that routes
every document, and ``Mapping.apply``/``apply_xml`` straight on what the readers return).

Inputs are seeds from ``tests/fuzz_corpus/``, ``tests/fixtures/``, the golden inputs in
``mappings/golden/`` and AS2 messages/MDNs built at run time, mutated: bytes flipped, delimiters
inserted, ranges deleted, truncated, segments duplicated, numbers made huge, the text re-encoded
(UTF-16, EBCDIC, stray high bytes), seeds spliced together. The property: a result or a
``gateway.errors.InputError`` whose message is not empty -- never another exception type, never a
hang (a watchdog stops an example after ``FUZZ_HANG_SECONDS``), never a rise of the process's peak
memory (ru_maxrss: C allocations such as libxml2's included) of ``FUZZ_MEMORY_MB`` or more in one example.

Guidance: every example runs under a line tracer limited to ``gateway/``; hypothesis ``target()``
steers towards inputs that run more lines, and in the long mode an input that runs a line no
earlier input ran joins the pool the next inputs are mutated from (the classic coverage-guided
loop). CI mode (default): a fixed small number of examples per target, the whole file in < 40 s,
static seeds only so failures replay. Long mode: ``FUZZ_EXAMPLES=N`` examples per target, e.g.
``FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/test_fuzz.py -p no:cacheprovider -s``; ``-s`` shows the
per-target summary (examples, lines reached, pool size).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import resource
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from gateway import edi, pipeline
from gateway.as2 import build, build_mdn, parse, parse_mdn
from gateway.config import load_deployment
from gateway.edi.validate import validate
from gateway.edi.xml import identify, parse_xml
from gateway.errors import As2Error, InputError
from harness import REPO

TESTS = Path(__file__).parent
CORPUS = TESTS / "fuzz_corpus"
GATEWAY_DIR = str(REPO / "gateway") + os.sep

LONG_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
HANG_SECONDS = float(os.environ.get("FUZZ_HANG_SECONDS", "10"))
MEMORY_LIMIT = int(float(os.environ.get("FUZZ_MEMORY_MB", "64")) * 2**20)
MAX_INPUT = 256 * 1024   # mutated inputs are capped: "huge" means huge counts and nesting, not megabytes


def fuzz(ci_examples: int) -> settings:
    """Per-target settings: ``ci_examples`` by default, FUZZ_EXAMPLES in the long mode.

    deadline=None because the hang watchdog is the deadline that also stops a real hang (hypothesis'
    own deadline only judges an example after it has finished).
    """
    return settings(max_examples=LONG_EXAMPLES or ci_examples, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


# --------------------------------------------------------------------------- seeds


def _files(*patterns: str) -> list[bytes]:
    found: list[Path] = []
    for pattern in patterns:
        found += sorted(REPO.glob(pattern))
    assert found, patterns
    return [p.read_bytes() for p in found]


EDI_SEEDS = _files("tests/fixtures/edi/*", "tests/fuzz_corpus/*.edi", "tests/fuzz_corpus/*.x12",
                   "mappings/golden/[ex]*/*.input.edi", "mappings/golden/x12-*/*.input.x12", "examples/*")
XML_SEEDS = _files("tests/fuzz_corpus/*.xml", "mappings/golden/xml-*/*.input.xml")
MDN_FIXTURES = _files("tests/fixtures/as2/mdn_*.txt")


# --------------------------------------------------------------------------- guidance and guards


class Hang(BaseException):
    """Raised by the watchdog. BaseException: product code's ``except Exception`` must not swallow it."""


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Interrupt the example after ``seconds`` (SIGALRM: also stops pure-Python loops)."""
    def ring(signum, frame):
        raise Hang(f"one input took more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Guided:
    """One fuzz target's state: lines of gateway/ reached so far, and (long mode) the growing input pool."""

    def __init__(self, name: str, seeds: list) -> None:
        self.name, self.seeds = name, list(seeds)
        self.pool: list = []          # inputs that reached new lines (long mode only)
        self.seen: set[tuple[str, int]] = set()
        self.examples = 0
        self.outcomes: dict[str, int] = {}

    def seed(self, draw: Callable):
        """A seed to mutate (``draw``: a DataObject's or a composite's): static seeds, plus in the long mode
        the inputs that found new lines."""
        choices = self.seeds + (self.pool if LONG_EXAMPLES else [])
        return choices[draw(_ANY) % len(choices)]

    def run(self, subject, call: Callable[[], str]) -> None:
        """Run ``call`` traced, watched and measured; it returns an outcome label for the summary."""
        lines: set[tuple[str, int]] = set()

        def local(frame, event, arg):
            if event == "line":
                lines.add((frame.f_code.co_filename, frame.f_lineno))
            return local

        def first(frame, event, arg):
            return local if frame.f_code.co_filename.startswith(GATEWAY_DIR) else None

        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        previous = sys.gettrace()
        try:
            with watchdog(HANG_SECONDS):
                sys.settrace(first)
                try:
                    label = call()
                finally:
                    sys.settrace(previous)
        finally:
            grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024   # ru_maxrss is in KiB
        assert grown < MEMORY_LIMIT, f"{self.name}: one input of {len(repr(subject))} chars raised the peak by {grown >> 20} MB"
        self.examples += 1
        self.outcomes[label] = self.outcomes.get(label, 0) + 1
        if currently_in_test_context():
            target(float(len(lines)), label=f"{self.name} lines")
        if not lines <= self.seen:
            self.seen |= lines
            if LONG_EXAMPLES and len(self.pool) < 2000:
                self.pool.append(subject)

    def summary(self) -> str:
        common = sorted(self.outcomes.items(), key=lambda kv: -kv[1])
        return (f"{self.name}: {self.examples} examples, {len(self.seen)} lines of gateway/ reached, "
                f"pool {len(self.pool)}, outcomes {common}")


TARGETS: dict[str, Guided] = {}


def guided(name: str, seeds: list) -> Guided:
    if name not in TARGETS:
        TARGETS[name] = Guided(name, seeds)
    return TARGETS[name]


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    for state in TARGETS.values():
        print("\nFUZZ " + state.summary())


def expected(exc: BaseException, kinds: tuple[type[BaseException], ...] = (InputError,)) -> str:
    """The outcome label of an allowed error; anything else fails the example with its traceback."""
    if not isinstance(exc, kinds):
        raise exc
    assert str(exc).strip(), f"{type(exc).__name__} without a message"
    # The AS2 layer's last resort turns any other exception into UnexpectedProcessingError("cannot ...:
    # KeyError: ..."): allowed, but counted apart, because each is a case no check of ours names.
    caught = re.search(r"cannot (?:process the AS2 message|read the MDN): (\w+):", str(exc))
    return f"{type(exc).__name__} (safety net: {caught.group(1)})" if caught else type(exc).__name__


# --------------------------------------------------------------------------- mutations


_SPECIALS = b"'+:?*~^|>!#=,. \r\n\t\x00\x15\x1a\x1c\x1d\x1e\x1f\x7f\x80\xc3\xe9\xef\xbb\xbf\xfe\xff<>&;\"/"
_HUGE = [b"999999999999999999999", b"18446744073709551617", b"-1", b"0", b"2147483648", b"1e999",
         b"9" * 400, b"00000000000000000000001", b"NaN", b"\xd9\xa3"]   # the last: Arabic-Indic digit three
_DIGITS = re.compile(rb"\d+")


def _terminator(raw: bytes) -> bytes:
    """The likely segment terminator: X12's from ISA, XML's '>', EDIFACT's from UNA or "'"."""
    if raw.startswith(b"ISA") and len(raw) > 105:
        return raw[105:106]
    if raw.lstrip().startswith(b"<"):
        return b">"
    if raw.startswith(b"UNA") and len(raw) > 8:
        return raw[8:9]
    return b"'"


ALL_OPS = ("flip", "insert", "delete", "truncate", "duplicate", "drop", "huge", "value", "charset", "splice",
           "repeat")
# Mutations that keep the syntax readable, so the mapping engine (behind the readers) gets the input.
GENTLE_OPS = ("duplicate", "drop", "huge", "value", "value")
_VALUES = [b"", b" ", b"X" * 300, b"-0", b"1,5", b"1.2.3", b"20261331", b"99999999", b"\xc3\xa9", b"\xff", b"NaN",
           b"<", b"&amp;", b"ZZZ", b"0" * 40]


_ANY = st.integers(0, 2**20)   # positions and choices are drawn in a fixed range, then taken modulo the input


@st.composite
def mutated(draw, seed: bytes, extra_seeds: list[bytes] = (), ops: tuple[str, ...] = ALL_OPS) -> bytes:
    """``seed`` with a few mutations (mostly one or two) of the kinds real partners and attackers produce.

    Every mutation draws the same values whatever the input (a fixed recipe), so that the long mode's
    growing seed pool never changes the shape of what hypothesis draws (it refuses that as flaky).
    """
    out = bytearray(seed)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3, 6]), label="mutations")):
        op, a, b, c, blob = draw(st.tuples(st.sampled_from(ops), _ANY, _ANY, _ANY, st.binary(max_size=12)),
                                 label="mutation")
        pos = a % (len(out) or 1)
        term = _terminator(bytes(out))
        segments = bytes(out).split(term)
        if op == "flip" and out:
            out[pos] = _SPECIALS[b % len(_SPECIALS)] if c % 2 else b % 256
        elif op == "insert":
            out[pos:pos] = bytes(_SPECIALS[(b + i) % len(_SPECIALS)] for i in range(1 + c % 8)) if c % 2 else blob
        elif op == "delete":
            del out[pos:pos + 1 + b % 40]
        elif op == "truncate":
            del out[pos:]
        elif op == "duplicate" and len(segments) > 1:   # one segment (or XML element tail) up to 200 times
            index = b % (len(segments) - 1)
            segments[index:index + 1] = [segments[index]] * (2 + c % 199)
            out = bytearray(term.join(segments))
        elif op == "drop" and len(segments) > 2:        # one segment (or XML element tail) left out
            del segments[b % (len(segments) - 1)]
            out = bytearray(term.join(segments))
        elif op == "value":                             # one value between two delimiters replaced
            bounds = [m.start() for m in re.finditer(rb"[^A-Za-z0-9 .,\-_/@\x80-\xff]", out)]
            if len(bounds) > 1:
                index = b % (len(bounds) - 1)
                out[bounds[index] + 1:bounds[index + 1]] = _VALUES[c % len(_VALUES)] if c % 3 else blob
        elif op == "huge":
            numbers = list(_DIGITS.finditer(out))
            if numbers:
                match = numbers[b % len(numbers)]
                out[match.start():match.end()] = _HUGE[c % len(_HUGE)]
        elif op == "charset":
            codec = ["utf-16", "utf-16-be", "cp500", "utf-32", "high", "bom", "surrogate"][b % 7]
            if codec == "high":
                out[pos:pos] = bytes([0x80 + c % 128])
            elif codec == "bom":
                out[0:0] = [b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff"][c % 4]
            elif codec == "surrogate":
                out[pos:pos] = b"\xed\xa0\x80"
            else:
                out = bytearray(bytes(out).decode("latin-1").encode(codec))
        elif op == "splice" and extra_seeds:
            other = extra_seeds[b % len(extra_seeds)]
            out = out[:pos] + bytearray(other[c % (len(other) + 1):])
        elif op == "repeat":
            out = out * (2 + b % 4)
        if len(out) > MAX_INPUT:
            del out[MAX_INPUT:]
    return bytes(out)


# --------------------------------------------------------------------------- EDIFACT and X12


def _read_everything(raw: bytes, chunk: int) -> str:
    """edi.read, then the streaming reader, then validation of every message: errors allowed are InputErrors."""
    try:
        fmt, interchanges = edi.read(raw)
        for interchange in interchanges:
            for message in interchange.messages:
                validate(message, interchange)
        label = f"{fmt} ok"
    except Exception as exc:  # noqa: BLE001 - judged by expected()
        label = expected(exc)
    try:
        for _interchange, _message in edi.iter_messages(io.BytesIO(raw), chunk_size=chunk):
            pass
    except Exception as exc:  # noqa: BLE001
        expected(exc)
    return label


@fuzz(100)
@given(st.data())
def test_edi_readers_only_raise_input_errors(data: st.DataObject) -> None:
    state = guided("edi", EDI_SEEDS)
    raw = data.draw(mutated(state.seed(data.draw), EDI_SEEDS), label="raw")
    chunk = data.draw(st.sampled_from([1, 5, 64, 4096, 1 << 20]), label="chunk")
    state.run(raw, lambda: _read_everything(raw, chunk))


# --------------------------------------------------------------------------- XML


def _read_xml(raw: bytes) -> str:
    try:
        namespace, local = identify(parse_xml(raw))
    except Exception as exc:  # noqa: BLE001
        return expected(exc)
    assert isinstance(namespace, str) and local
    return "xml ok"


@st.composite
def xml_inputs(draw, state: Guided) -> bytes:
    """Mutated XML seeds, and generated hostile shapes: deep nesting, wide trees, DOCTYPEs after odd prologs."""
    shape = draw(st.sampled_from(["mutated", "mutated", "mutated", "deep", "wide", "doctype"]))
    if shape == "deep":
        depth = draw(st.integers(1, 6000))
        return b"<a>" * depth + draw(st.sampled_from([b"x", b"", b"&x;", b"\xff"])) + b"</a>" * draw(st.integers(0, depth))
    if shape == "wide":
        return b"<r>" + b"<i a='1'>v</i>" * draw(st.integers(0, 20000)) + b"</r>"
    if shape == "doctype":
        prolog = draw(st.lists(st.sampled_from([b"\xef\xbb\xbf", b"<?xml version='1.0'?>", b"<!-- c -->", b"<?pi x?>",
                                                b" ", b"\n", b"\t", b"\r\n"]), max_size=5))
        doctype = draw(st.sampled_from([b"<!DOCTYPE r [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>",
                                        b"<!DOCTYPE r SYSTEM 'http://127.0.0.1:9/x.dtd'>", b"<!doctype r>",
                                        b"<!DOCTYPE r [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;'>]>",
                                        b"<!ENTITY e 'x'>"]))
        text = b"".join(prolog) + doctype + b"<r>&e;&b;</r>"
        codec = draw(st.sampled_from([None, "utf-16", "utf-16-be", "utf-32", "cp500"]))
        return text.decode("latin-1").encode(codec) if codec else text
    return draw(mutated(state.seed(draw), XML_SEEDS))


@fuzz(100)
@given(st.data())
def test_xml_reader_only_raises_parse_errors(data: st.DataObject) -> None:
    state = guided("xml", XML_SEEDS)
    raw = data.draw(xml_inputs(state), label="raw")
    state.run(raw, lambda: _read_xml(raw))


def test_xml_entity_content_never_reaches_a_parsed_document() -> None:
    """Whatever the fuzzer finds accepted, /etc/passwd's text never appears in a parsed tree."""
    passwd = Path("/etc/passwd").read_bytes().split(b":")[0]
    for prolog in (b"", b"\xef\xbb\xbf", b"<?xml version='1.0' encoding='UTF-8'?>\n<!-- x -->"):
        raw = prolog + b"<!DOCTYPE r [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><r>&e;</r>"
        try:
            tree = parse_xml(raw)
        except InputError:
            continue
        assert passwd not in (tree.getroot().text or "").encode(), raw


# --------------------------------------------------------------------------- AS2 messages and MDNs


@functools.cache
def keys():
    from fixtures.as2.pki import pki
    return pki()


PAYLOAD = (REPO / "tests" / "fixtures" / "edi" / "orders_d96a.edi").read_bytes()


@functools.cache
def as2_seeds() -> list[tuple[str, bytes]]:
    """(Content-Type, body) of AS2 messages in every shape a partner sends: layer order, transfer, algorithms."""
    k = keys()
    ours = [k.ours.certificate]
    shapes = [dict(sign=k.partner, encrypt=ours), dict(sign=k.partner), dict(encrypt=ours), dict(),
              dict(sign=k.partner, compress="before-signing"), dict(sign=k.partner, encrypt=ours, compress="after-signing"),
              dict(sign=k.partner, binary_transfer=False), dict(sign=k.partner_ec, digest="sha384"),
              dict(sign=k.partner, encrypt=ours, cipher="3des", digest="sha1"), dict(compress="before-signing"),
              dict(sign=k.partner, algorithm_protection=False, filename="po.edi")]
    out = []
    for shape in shapes:
        shape.setdefault("filename", None)
        message = build(PAYLOAD, **shape)
        out.append((message.content_type, bytes(message.body)))
    return out


_CONTENT_TYPES = ['application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
                  "application/pkcs7-mime; smime-type=compressed-data", "application/pkcs7-mime",
                  'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="',
                  "application/edifact", "multipart/signed", "", "text/plain; charset=\xff", "a/b; c=\"d", ";;;=",
                  "multipart/report; boundary=x"]


@st.composite
def as2_inputs(draw, state: Guided) -> tuple[str, bytes]:
    content_type, body = state.seed(draw)
    bodies = [b for _, b in as2_seeds()]
    body = draw(mutated(body, bodies))
    if draw(st.integers(0, 4)) == 0:   # the Content-Type header is the partner's too
        content_type = draw(st.sampled_from(_CONTENT_TYPES) | st.text(max_size=60)
                            | st.just(content_type).map(lambda c: c.replace("boundary=", "boundary=x")))
    return content_type, body


@fuzz(60)
@given(st.data())
def test_as2_parser_only_raises_as2_errors(data: st.DataObject) -> None:
    state = guided("as2", as2_seeds())
    content_type, body = data.draw(as2_inputs(state), label="message")
    k = keys()
    strict = data.draw(st.booleans(), label="require signature and encryption")
    mic = data.draw(st.sampled_from([("sha-256",), ("sha1", "md5"), ("bogus",), ()]), label="mic algorithms")

    def call() -> str:
        try:
            inbound = parse(content_type, body, identities=[k.ours], trusted=[k.partner.certificate, k.partner_ec.certificate],
                            max_size=2**20, require_signature=strict, require_encryption=strict, mic_algorithms=mic)
        except Exception as exc:  # noqa: BLE001
            return expected(exc, (As2Error,))
        # Every signed seed signs PAYLOAD: a mutation that still verifies must not have changed it.
        assert not inbound.signed or inbound.payload == PAYLOAD, inbound.payload[:200]
        return "signed ok" if inbound.signed else "unsigned ok"

    state.run((content_type, body), call)


def _fixture_mdn(raw: bytes) -> tuple[str, bytes]:
    """The fixture files hold a Content-Type header (maybe folded), an empty line, then the body."""
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    return " ".join(head.decode().split("\n")).split(":", 1)[1].strip(), body


@functools.cache
def mdn_seeds() -> list[tuple[str, bytes]]:
    k = keys()
    out = [_fixture_mdn(raw) for raw in MDN_FIXTURES]
    for sign in (k.partner, None):
        for disposition, mic in (("processed", "abc=="), ("decryption-failed", None)):
            out.append(build_mdn(original_message_id="<1@ACME>", our_as2_id="ACME", partner_as2_id="US",
                                 mic=mic, mic_algorithm="sha-256" if mic else None, disposition=disposition,
                                 sign=sign, text="fuzz"))
    return [(ct, bytes(body)) for ct, body in out]


@fuzz(80)
@given(st.data())
def test_mdn_reader_only_raises_as2_errors(data: st.DataObject) -> None:
    state = guided("mdn", mdn_seeds())
    content_type, body = state.seed(data.draw)
    body = data.draw(mutated(body, [b for _, b in mdn_seeds()]), label="body")
    if data.draw(st.integers(0, 4), label="new content type") == 0:
        content_type = data.draw(st.sampled_from(_CONTENT_TYPES) | st.text(max_size=60), label="content type")
    signed = data.draw(st.booleans(), label="require signature")

    def call() -> str:
        try:
            mdn = parse_mdn(content_type, body, trusted=[keys().partner.certificate], require_signature=signed)
        except Exception as exc:  # noqa: BLE001
            return expected(exc, (As2Error,))
        # The signed seeds answer <1@ACME>: a mutation that still verifies must not have changed what they say.
        assert not mdn.signed or (mdn.original_message_id, mdn.disposition) == ("<1@ACME>", "processed"), mdn
        return "signed ok" if mdn.signed else "unsigned ok"

    state.run((content_type, body), call)


# --------------------------------------------------------------------------- the mapping engine


MAPPING_SEEDS = _files("mappings/golden/[ex]*/*.input.*")


@functools.cache
def fuzz_deployment():
    """A deployment on disk whose partner FUZZ owns every seed's sender and routes every document type."""
    import tempfile
    home = Path(tempfile.mkdtemp(prefix="gw-fuzz-"))
    (home / "mappings").symlink_to(REPO / "mappings")
    (home / "partners").mkdir()
    senders: dict[str, set[str]] = {"edifact": set(), "x12": set()}
    for raw in MAPPING_SEEDS + EDI_SEEDS:
        with contextlib.suppress(InputError):
            fmt, interchanges = edi.read(raw)
            for interchange in interchanges:
                senders[fmt].add(f"{interchange.sender.qualifier}:{interchange.sender.id}".lstrip(":"))
    (home / "gateway.toml").write_text('[targets.out]\ntype = "file"\npath = "var/out"\n')
    listed = "\n".join(f"{fmt} = {sorted(ids)!r}".replace("'", '"') for fmt, ids in senders.items())
    (home / "partners" / "FUZZ.toml").write_text(
        f'enabled = true\n[identifiers]\n{listed}\n[inbox]\nenabled = false\n'
        f'[[routes]]\ndocument = "*"\ntargets = ["out"]\n')
    deployment = load_deployment(home)
    assert not deployment.problems and "FUZZ" in deployment.partners, deployment.problems
    return deployment


def test_fuzz_deployment_maps_every_golden_seed() -> None:
    """The mapping target starts from inputs that map: otherwise it would only fuzz the readers."""
    deployment = fuzz_deployment()
    mapped = 0
    for raw in MAPPING_SEEDS:
        with contextlib.suppress(InputError):   # a few golden inputs break a structure rule on purpose
            mapped += bool(pipeline.process(raw, deployment, partner_id="FUZZ", channel="inbox", message_id="m").documents)
    assert mapped >= 0.8 * len(MAPPING_SEEDS), (mapped, len(MAPPING_SEEDS))


def _map_everything(raw: bytes) -> str:
    """The pipeline (validate, map, schema check, route); then the engine straight on unvalidated messages."""
    deployment = fuzz_deployment()
    try:
        outcome = pipeline.process(raw, deployment, partner_id="FUZZ", channel="inbox", message_id="m")
        label = f"mapped {len(outcome.documents)}"
    except Exception as exc:  # noqa: BLE001
        label = expected(exc)
    # Mapping.apply is also reached for messages that validation passed with a lenient partner file;
    # here it meets whatever the reader returns, so only MappingError (an InputError) may come out.
    try:
        if raw.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"<"):
            tree = parse_xml(raw)
            for mapping in deployment.mappings.of_format("xml"):
                if (mapping.namespace, mapping.root) == identify(tree):
                    mapping.apply_xml(tree)
        else:
            fmt, interchanges = edi.read(raw)
            for interchange in interchanges:
                for message in interchange.messages:
                    mapping = deployment.mappings.find(fmt, message.type, message.version)
                    if mapping is not None:
                        mapping.apply(message, interchange.delimiters)
    except Exception as exc:  # noqa: BLE001
        expected(exc)
    return label


@fuzz(80)
@given(st.data())
def test_mapping_engine_only_raises_input_errors(data: st.DataObject) -> None:
    state = guided("mapping", MAPPING_SEEDS)
    gentle = data.draw(st.integers(0, 3), label="gentle") > 0
    raw = data.draw(mutated(state.seed(data.draw), MAPPING_SEEDS, GENTLE_OPS if gentle else ALL_OPS), label="raw")
    state.run(raw, lambda: _map_everything(raw))


# --------------------------------------------------------------------------- regressions found by the fuzzer

_MDN_TYPE = 'multipart/report; report-type=disposition-notification; boundary="b"'
_MDN_BODY = (b"--b\r\nContent-Type: text/plain; charset=%s\r\n\r\nthanks\r\n"
             b"--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
             b"Original-Message-ID: <1@ACME>\r\nDisposition: automatic-action/MDN-sent-automatically; processed\r\n"
             b"\r\n--b--\r\n")


def test_mdn_with_a_known_charset_reads() -> None:
    mdn = parse_mdn(_MDN_TYPE, _MDN_BODY % b"us-ascii", trusted=[], require_signature=False)
    assert (mdn.original_message_id, mdn.disposition, mdn.text) == ("<1@ACME>", "processed", "thanks")


def test_regression_mdn_text_part_with_an_unknown_charset_is_still_read() -> None:
    # Found as "UnexpectedProcessingError (safety net: LookupError)": a positive MDN refused as unreadable
    # because of its human-readable part's charset, so the message would be sent again.
    mdn = parse_mdn(_MDN_TYPE, _MDN_BODY % b"x-no-such-charset", trusted=[], require_signature=False)
    assert (mdn.original_message_id, mdn.disposition) == ("<1@ACME>", "processed")
