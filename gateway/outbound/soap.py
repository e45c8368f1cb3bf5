"""The ``soap`` connector: POSTs the canonical envelope as a SOAP 1.1 or 1.2 request built with lxml.

The request for ``operation = "SubmitDocument"``, ``namespace = "urn:erp"`` (SOAP 1.1 shown; 1.2
uses ``http://www.w3.org/2003/05/soap-envelope`` and ``mustUnderstand="true"``)::

    <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
                   xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                   xmlns:xsd="http://www.w3.org/2001/XMLSchema">
      <soap:Header>
        <wsse:Security soap:mustUnderstand="1" xmlns:wsse="...oasis-200401-wss-wssecurity-secext-1.0.xsd">
          <wsse:UsernameToken>                      <!-- only with username + password -->
            <wsse:Username>gw</wsse:Username>
            <wsse:Password Type="...#PasswordText">secret</wsse:Password>
          </wsse:UsernameToken>
        </wsse:Security>
        <IdempotencyKey xmlns="urn:erp">same on every retry and replay</IdempotencyKey>
      </soap:Header>
      <soap:Body>
        <SubmitDocument xmlns="urn:erp">           <!-- the canonical JSON envelope, key by key -->
          <type>order</type>
          <version xsi:type="xsd:integer">1</version>
          <document>
            <number>PO-1</number>
            <requested_delivery_date xsi:nil="true"/>
            <lines><item><line xsi:type="xsd:integer">1</line>...</item><item>...</item></lines>
          </document>
        </SubmitDocument>
      </soap:Body>
    </soap:Envelope>

JSON to XML: an object key becomes an element of that name (in ``namespace``, document order
kept); a list becomes its key's element holding one ``<item>`` per entry (lists in lists nest
``<item><item>``); strings are text; numbers and booleans are text with ``xsi:type`` ``xsd:integer``,
``xsd:double`` or ``xsd:boolean``; null is an empty element with ``xsi:nil="true"``. An empty list,
an empty object and an empty string all become an empty element: the canonical JSON Schema tells
them apart. A key that is not an XML name, or text with characters XML cannot carry, makes the
delivery permanent (no retry fixes the document).

The answer: a SOAP Fault (at any HTTP status) is retryable or permanent by its fault codes, most
specific first: ``retry_faults`` / ``permanent_faults`` are checked first, then the default
(``Server`` / ``Receiver`` retryable, anything else permanent). Codes are compared by local name,
prefixes ignored (responses choose their own); SOAP 1.1 dotted codes also match their parents
(``Server.Database`` matches ``Server``), SOAP 1.2 subcodes come before their parent code. Without
a Fault: 2xx delivered (an empty 2xx body is a one-way acknowledgment); 408/425/429/5xx retryable,
other statuses permanent, as for ``rest``; a 2xx answer that is not a SOAP envelope is retryable.
Answers are parsed without DTDs, entities or network access.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import aiohttp
from lxml import etree

from ..edi.xml import hardened_parser
from ..errors import GatewayError, PermanentDeliveryError, RetryableDeliveryError
from ..model import DeliveryJob
from .rest import RETRYABLE_STATUS, retry_after_seconds
from .tls import (AUTH_KEYS, auth_headers, check_auth_options, client_ssl_context, is_loopback, secret_values,
                  tls_hint)

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD_TEXT = ("http://docs.oasis-open.org/wss/2004/01/"
                 "oasis-200401-wss-username-token-profile-1.0#PasswordText")
DEFAULT_NAMESPACE = "urn:edi-gateway:soap:1"
DEFAULT_OPERATION = "SubmitDocument"
DEFAULT_TIMEOUT = 30
MAX_RESPONSE = 4 * 1024 * 1024      # enough for any fault or acknowledgment; bounds memory
DEFAULT_RETRY_CODES = frozenset({"Server", "Receiver"})

_KNOWN = {"url", "version", "action", "operation", "namespace", "timeout", "headers", "username",
          "password", "retry_faults", "permanent_faults", "verify_tls", "ca_file"} | AUTH_KEYS
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
_SECURITY_MARK = "***"


@dataclass(frozen=True)
class SoapFault:
    """A parsed SOAP Fault: ``codes`` are local names, most specific first; ``code`` as written."""

    codes: tuple[str, ...]
    code: str
    reason: str


def _local(code: str) -> str:
    """``soap:Server`` / ``{ns}Server`` / ``Server`` -> ``Server``."""
    code = code.strip()
    if code.startswith("{") and "}" in code:
        return code.split("}", 1)[1]
    return code.rsplit(":", 1)[-1]


# --------------------------------------------------------------------------- request

def _fill(element: etree._Element, value: Any, ns: str, path: str) -> None:
    """Write one JSON value into ``element`` (see the module docstring for the shape)."""
    if value is None:
        element.set(f"{{{XSI}}}nil", "true")
    elif isinstance(value, bool):
        element.set(f"{{{XSI}}}type", "xsd:boolean")
        element.text = "true" if value else "false"
    elif isinstance(value, int):
        element.set(f"{{{XSI}}}type", "xsd:integer")
        element.text = str(value)
    elif isinstance(value, float):
        element.set(f"{{{XSI}}}type", "xsd:double")
        element.text = json.dumps(value)
    elif isinstance(value, str):
        try:
            element.text = value
        except ValueError:
            raise PermanentDeliveryError(f"{path} holds characters that XML 1.0 cannot carry") from None
    elif isinstance(value, list):
        for index, entry in enumerate(value):
            _fill(etree.SubElement(element, f"{{{ns}}}item"), entry, ns, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, entry in value.items():
            if not isinstance(key, str) or not _NCNAME.match(key):
                raise PermanentDeliveryError(f"key {key!r} at {path} cannot be an XML element name")
            _fill(etree.SubElement(element, f"{{{ns}}}{key}"), entry, ns, f"{path}.{key}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def build_envelope(body: bytes, *, idempotency_key: str, version: str = "1.1",
                   operation: str = DEFAULT_OPERATION, namespace: str = DEFAULT_NAMESPACE,
                   username: str | None = None, password: str | None = None) -> bytes:
    """The SOAP request for one canonical JSON document; PermanentDeliveryError if it cannot be one."""
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PermanentDeliveryError(f"the document is not canonical JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PermanentDeliveryError("the document is not a canonical JSON envelope (an object)")
    soap = SOAP12 if version == "1.2" else SOAP11
    envelope = etree.Element(f"{{{soap}}}Envelope", nsmap={"soap": soap, "xsi": XSI, "xsd": XSD})
    header = etree.SubElement(envelope, f"{{{soap}}}Header")
    if username is not None and password is not None:
        security = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE})
        security.set(f"{{{soap}}}mustUnderstand", "true" if version == "1.2" else "1")
        token = etree.SubElement(security, f"{{{WSSE}}}UsernameToken")
        etree.SubElement(token, f"{{{WSSE}}}Username").text = username
        secret = etree.SubElement(token, f"{{{WSSE}}}Password", Type=PASSWORD_TEXT)
        secret.text = password
    etree.SubElement(header, f"{{{namespace}}}IdempotencyKey", nsmap={None: namespace}).text = idempotency_key
    soap_body = etree.SubElement(envelope, f"{{{soap}}}Body")
    _fill(etree.SubElement(soap_body, f"{{{namespace}}}{operation}", nsmap={None: namespace}),
          document, namespace, "$")
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


# --------------------------------------------------------------------------- response

def parse_fault(fault: etree._Element) -> SoapFault:
    """Read a SOAP 1.1 (faultcode/faultstring) or 1.2 (Code/Value, Subcode, Reason/Text) Fault."""
    if fault.tag == f"{{{SOAP12}}}Fault":
        chain: list[str] = []
        code = fault.find(f"{{{SOAP12}}}Code")
        while code is not None:
            chain.append((code.findtext(f"{{{SOAP12}}}Value") or "").strip())
            code = code.find(f"{{{SOAP12}}}Subcode")
        reason = fault.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text") or ""
        codes = tuple(_local(c) for c in reversed(chain) if c)
        return SoapFault(codes, " / ".join(c for c in chain if c), reason.strip())
    written = (fault.findtext("{*}faultcode") or "").strip()
    local = _local(written)
    parts = local.split(".")
    codes = tuple(".".join(parts[:n]) for n in range(len(parts), 0, -1)) if local else ()
    return SoapFault(codes, written, (fault.findtext("{*}faultstring") or "").strip())


def fault_is_retryable(fault: SoapFault, retry: frozenset[str], permanent: frozenset[str]) -> bool:
    """Configured codes first (most specific code first), then Server/Receiver retryable, else permanent."""
    for code in fault.codes:
        if code in retry:
            return True
        if code in permanent:
            return False
    return bool(fault.codes) and fault.codes[-1] in DEFAULT_RETRY_CODES


def read_envelope(raw: bytes) -> etree._Element | str:
    """The SOAP Envelope element of an answer, or a sentence saying why the answer is not one."""
    try:
        root = etree.fromstring(raw, hardened_parser())
    except etree.XMLSyntaxError as exc:
        return f"an answer that is not XML ({exc.msg})"
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        return "an answer with a DTD, which SOAP forbids"
    if root.tag not in (f"{{{SOAP11}}}Envelope", f"{{{SOAP12}}}Envelope"):
        return f"XML that is not a SOAP envelope (root {root.tag})"
    return root


# --------------------------------------------------------------------------- options

def _fault_list(value: Any) -> frozenset[str]:
    return frozenset(_local(v) for v in value)


class SoapConnector:
    """Delivers a document as one SOAP request to ``url``; the answer decides the delivery's fate."""

    @classmethod
    def check_options(cls, options: dict[str, Any], home: Path,
                      resolve_secret: Callable[[str], str]) -> Iterable[tuple[str, str]]:
        """Validate every option of a soap target without side effects; yields (key, problem)."""
        for key in options:
            if key not in _KNOWN:
                yield key, "unknown setting for a soap target"
        url = options.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if not parts or parts.scheme not in ("http", "https") or not parts.hostname:
            yield "url", "a soap target needs url = \"http(s)://host/path\""
            parts = None
        elif parts.username or parts.password:
            yield "url", "put credentials in username/password or headers references, not in the URL"
        if str(options.get("version", "1.1")) not in ("1.1", "1.2"):
            yield "version", "must be \"1.1\" or \"1.2\""
        if not isinstance(options.get("action", ""), str):
            yield "action", "must be a string (the SOAPAction URI)"
        operation = options.get("operation", DEFAULT_OPERATION)
        if not isinstance(operation, str) or not _NCNAME.match(operation):
            yield "operation", "must be an XML element name without prefix, e.g. \"SubmitDocument\""
        namespace = options.get("namespace", DEFAULT_NAMESPACE)
        if not isinstance(namespace, str) or ":" not in namespace or any(c.isspace() for c in namespace):
            yield "namespace", "must be an absolute namespace URI, e.g. \"urn:erp:orders\" or \"http://...\""
        timeout = options.get("timeout", DEFAULT_TIMEOUT)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            yield "timeout", "must be a positive number of seconds"
        headers = options.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            yield "headers", "must be a table of header = \"value\" (values may be env:NAME references)"
        else:
            for name, reference in headers.items():
                try:
                    resolve_secret(reference)
                except GatewayError as exc:
                    yield f"headers.{name}", str(exc)
        yield from cls._check_credentials(options, parts, resolve_secret)
        lists: dict[str, frozenset[str]] = {}
        for key in ("retry_faults", "permanent_faults"):
            value = options.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and _local(v) for v in value):
                yield key, "must be a list of fault codes, e.g. [\"soap:Server\", \"Receiver\", \"MessageTimeout\"]"
            else:
                lists[key] = _fault_list(value)
        both = lists.get("retry_faults", frozenset()) & lists.get("permanent_faults", frozenset())
        if both:
            yield "permanent_faults", f"{', '.join(sorted(both))} also listed in retry_faults"
        if not isinstance(options.get("verify_tls", True), bool):
            yield "verify_tls", "must be true or false"
        ca_file = options.get("ca_file")
        if ca_file is not None and not (isinstance(ca_file, str) and (home / ca_file).is_file()):
            yield "ca_file", "must name an existing PEM file"
        yield from check_auth_options(options, home, resolve_secret, scheme=parts.scheme if parts else None,
                                      host=(parts.hostname or "") if parts else "",
                                      verify=options.get("verify_tls", True) is not False)

    @staticmethod
    def _check_credentials(options: dict[str, Any], parts: Any,
                           resolve_secret: Callable[[str], str]) -> Iterable[tuple[str, str]]:
        username, password = options.get("username"), options.get("password")
        if username is not None and (not isinstance(username, str) or not username):
            yield "username", "must be a non-empty string"
        if password is not None and not (isinstance(password, str) and password.startswith(("env:", "file:"))):
            # Never the password itself: gateway.toml is shared, copied and committed.
            yield "password", "must be a secret reference: env:NAME or file:PATH"
        elif password is not None:
            try:
                resolve_secret(password)
            except GatewayError as exc:
                yield "password", str(exc)
        if (username is None) != (password is None):
            yield "password" if password is None else "username", "username and password go together"
        # PasswordText is readable by anyone on the path: only over TLS, or on this machine.
        if password is not None and parts is not None and parts.scheme == "http" \
                and not is_loopback(parts.hostname or ""):
            yield "url", "a WS-Security password in clear text needs an https url"

    def __init__(self, target: Any, home: Path) -> None:
        from ..config import resolve_secret

        opts = target.options
        self.url: str = opts["url"]
        self.version = str(opts.get("version", "1.1"))
        self.action: str = opts.get("action", "")
        self.operation: str = opts.get("operation", DEFAULT_OPERATION)
        self.namespace: str = opts.get("namespace", DEFAULT_NAMESPACE)
        self.timeout = aiohttp.ClientTimeout(total=float(opts.get("timeout", DEFAULT_TIMEOUT)))
        self.headers = {k: resolve_secret(v) for k, v in opts.get("headers", {}).items()}
        self.username: str | None = opts.get("username")
        self._password = resolve_secret(opts["password"]) if "password" in opts else None
        self.retry_faults = _fault_list(opts.get("retry_faults", []))
        self.permanent_faults = _fault_list(opts.get("permanent_faults", []))
        self.headers.update(auth_headers(opts, resolve_secret))
        self.ssl: ssl.SSLContext | bool = client_ssl_context(opts, home, resolve_secret,
                                                             verify=bool(opts.get("verify_tls", True)))
        self._client_cert = bool(opts.get("client_cert"))
        # Secret values to blank out of any text a server sends back (a fault may echo the request).
        self._secrets = [s for s in [self._password, *self.headers.values(), *secret_values(opts, resolve_secret)]
                         if s and len(s) >= 4]
        self._secrets.sort(key=len, reverse=True)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"SoapConnector(url={self.url!r}, version={self.version!r}, operation={self.operation!r})"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _SECURITY_MARK)
        return text

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(ssl=self.ssl, limit=64),
            )
        return self._session

    def _request_headers(self, job: DeliveryJob) -> dict[str, str]:
        headers = {
            **self.headers,
            "Idempotency-Key": job.idempotency_key,
            "X-Gateway-Partner": job.partner,
            "X-Gateway-Document-Type": job.document_type,
            "X-Gateway-Attempt": str(job.attempt),
        }
        if self.version == "1.2":
            action = f'; action="{self.action}"' if self.action else ""
            headers["Content-Type"] = f"application/soap+xml; charset=utf-8{action}"
        else:
            headers["Content-Type"] = "text/xml; charset=utf-8"
            headers["SOAPAction"] = f'"{self.action}"'
        return headers

    async def send(self, job: DeliveryJob) -> int | None:
        """POST the SOAP request; returns the HTTP status or raises a typed DeliveryError."""
        body = build_envelope(job.body, idempotency_key=job.idempotency_key, version=self.version,
                              operation=self.operation, namespace=self.namespace,
                              username=self.username, password=self._password)
        try:
            async with self._client().post(self.url, data=body, headers=self._request_headers(job),
                                           allow_redirects=False) as resp:
                status = resp.status
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                raw = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    raw += chunk
                    if len(raw) > MAX_RESPONSE:
                        break
        except asyncio.TimeoutError:
            raise RetryableDeliveryError(f"no answer from {self.url} within {self.timeout.total:g} s") from None
        except aiohttp.ClientError as exc:
            hint = tls_hint(exc, self._client_cert, self.url)
            raise RetryableDeliveryError(
                self._scrub(f"cannot reach {self.url}: {exc.__class__.__name__}: {exc}{hint}")) from None
        return self._judge(status, bytes(raw), retry_after)

    def _judge(self, status: int, raw: bytes, retry_after: float | None) -> int:
        """Delivered (returns the status) or the typed error the answer calls for."""
        ok = 200 <= status < 300
        if len(raw) > MAX_RESPONSE:
            if ok:
                raise RetryableDeliveryError(f"{self.url} answered HTTP {status} with more than "
                                             f"{MAX_RESPONSE // 1048576} MiB: not a SOAP acknowledgment",
                                             status=status, retry_after=retry_after)
            return self._by_status(status, b"", retry_after)
        if not raw.strip():
            return status if ok else self._by_status(status, raw, retry_after)
        envelope = read_envelope(raw)
        if isinstance(envelope, str):
            if ok:
                raise RetryableDeliveryError(self._scrub(f"{self.url} answered HTTP {status} with {envelope}: "
                                                         f"{_snippet(raw)}"), status=status, retry_after=retry_after)
            return self._by_status(status, raw, retry_after)
        fault = next((f for f in envelope.iterfind("{*}Body/{*}Fault")
                      if f.tag in (f"{{{SOAP11}}}Fault", f"{{{SOAP12}}}Fault")), None)
        if fault is None:
            return status if ok else self._by_status(status, raw, retry_after)
        parsed = parse_fault(fault)
        detail = self._scrub(f"{self.url} answered SOAP Fault {parsed.code or '(no code)'}: "
                             f"{parsed.reason[:300] or '(no reason)'} (HTTP {status})")
        if fault_is_retryable(parsed, self.retry_faults, self.permanent_faults):
            raise RetryableDeliveryError(detail, status=status, retry_after=retry_after)
        raise PermanentDeliveryError(detail, status=status)

    def _by_status(self, status: int, raw: bytes, retry_after: float | None) -> int:
        """Non-2xx answers without a Fault, classified like the rest connector's."""
        snippet = _snippet(raw)
        detail = self._scrub(f"{self.url} answered HTTP {status}" + (f": {snippet}" if snippet else ""))
        if status in RETRYABLE_STATUS or status >= 500:
            raise RetryableDeliveryError(detail, status=status, retry_after=retry_after)
        raise PermanentDeliveryError(detail, status=status)

    async def close(self) -> None:
        """Close the HTTP session and its connections."""
        if self._session is not None:
            await self._session.close()


def _snippet(raw: bytes) -> str:
    return raw[:300].decode("utf-8", "replace").strip()


__all__ = ["SoapConnector", "SoapFault", "build_envelope", "fault_is_retryable", "parse_fault", "read_envelope"]
