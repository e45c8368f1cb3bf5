"""A real SOAP 1.1/1.2 service on 127.0.0.1 for connector tests: checks each envelope, answers as scripted.

Written from the SOAP 1.1 note, SOAP 1.2 part 1/2 and the WS-Security UsernameToken profile, not
from gateway/outbound/soap.py: it shares no code with the connector it tests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from lxml import etree

ENV11 = "http://schemas.xmlsoap.org/soap/envelope/"
ENV12 = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"


@dataclass
class Received:
    """One request as the service saw it."""

    headers: dict[str, str]
    body: bytes
    version: str = ""
    problems: list[str] = field(default_factory=list)
    idempotency_key: str | None = None
    username: str | None = None
    password: str | None = None
    document: Any = None          # the operation element read back into JSON values


def to_json(element: etree._Element) -> Any:
    """Read an element back the way the connector documents its JSON-to-XML shape."""
    if element.get(f"{{{XSI}}}nil") == "true":
        return None
    children = [c for c in element if isinstance(c.tag, str)]
    if children:
        if all(etree.QName(c).localname == "item" for c in children):
            return [to_json(c) for c in children]
        return {etree.QName(c).localname: to_json(c) for c in children}
    text = element.text or ""
    kind = element.get(f"{{{XSI}}}type")
    if kind == "xsd:integer":
        return int(text)
    if kind == "xsd:double":
        return float(text)
    if kind == "xsd:boolean":
        return text == "true"
    return text


def fault_xml(version: str, code: str, reason: str, subcode: str | None = None) -> bytes:
    """A SOAP Fault the way a server would write it: ``code`` like ``soap:Server`` / ``soap:Receiver``."""
    reason = reason.replace("&", "&amp;").replace("<", "&lt;")
    if version == "1.2":
        sub = (f"<soap:Subcode><soap:Value>m:{subcode}</soap:Value></soap:Subcode>" if subcode else "")
        return (f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{ENV12}" xmlns:m="urn:test:faults">'
                f"<soap:Body><soap:Fault><soap:Code><soap:Value>{code}</soap:Value>{sub}</soap:Code>"
                f'<soap:Reason><soap:Text xml:lang="en">{reason}</soap:Text></soap:Reason>'
                f"</soap:Fault></soap:Body></soap:Envelope>").encode()
    return (f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{ENV11}"><soap:Body><soap:Fault>'
            f"<faultcode>{code}</faultcode><faultstring>{reason}</faultstring>"
            f"</soap:Fault></soap:Body></soap:Envelope>").encode()


def ok_xml(version: str, operation: str, namespace: str) -> bytes:
    env = ENV12 if version == "1.2" else ENV11
    return (f'<?xml version="1.0"?><s:Envelope xmlns:s="{env}"><s:Body>'
            f'<{operation}Response xmlns="{namespace}"><status>accepted</status></{operation}Response>'
            f"</s:Body></s:Envelope>").encode()


class SoapService:
    """Answers each POST per the next scripted answer (default ``("ok",)``); records every request.

    Answers: ``("ok",)``; ``("empty", status)``; ``("fault", code, reason, {status, version, subcode,
    echo})``; ``("slow", seconds)``; ``("raw", status, body, headers)``. A request that breaks the
    protocol gets a Client/Sender fault naming its problems, whatever was scripted.
    """

    def __init__(self, *, operation: str = "SubmitDocument", namespace: str = "urn:test:erp",
                 username: str | None = None, password: str | None = None) -> None:
        self.operation, self.namespace = operation, namespace
        self.username, self.password = username, password
        self.answers: list[tuple] = []
        self.received: list[Received] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._released = asyncio.Event()

    async def start(self) -> "SoapService":
        app = web.Application()
        app.router.add_post("/soap", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/soap"
        return self

    async def stop(self) -> None:
        self._released.set()           # slow handlers end now instead of holding the shutdown
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ checking a request

    def _check(self, got: Received) -> None:
        ctype = got.headers.get("Content-Type", "")
        media = ctype.split(";")[0].strip().lower()
        if media == "text/xml":
            got.version = "1.1"
            if "SOAPAction" not in got.headers:
                got.problems.append("SOAP 1.1 request without a SOAPAction header")
        elif media == "application/soap+xml":
            got.version = "1.2"
        else:
            got.problems.append(f"content type {ctype!r} is neither SOAP 1.1 nor 1.2")
            return
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        try:
            root = etree.fromstring(got.body, parser)
        except etree.XMLSyntaxError as exc:
            got.problems.append(f"not XML: {exc}")
            return
        env = ENV12 if got.version == "1.2" else ENV11
        if root.tag != f"{{{env}}}Envelope":
            got.problems.append(f"root {root.tag} is not a SOAP {got.version} Envelope")
            return
        parts = [c for c in root if isinstance(c.tag, str)]
        tags = [c.tag for c in parts]
        if tags not in ([f"{{{env}}}Header", f"{{{env}}}Body"], [f"{{{env}}}Body"]):
            got.problems.append(f"Envelope children {tags} are not [Header,] Body")
            return
        header = parts[0] if len(parts) == 2 else None
        body = parts[-1]
        if header is not None:
            key = header.find(f"{{{self.namespace}}}IdempotencyKey")
            got.idempotency_key = key.text if key is not None else None
            self._check_security(got, header, env)
        if got.idempotency_key is None:
            got.problems.append("no IdempotencyKey header block")
        ops = [c for c in body if isinstance(c.tag, str)]
        if len(ops) != 1 or ops[0].tag != f"{{{self.namespace}}}{self.operation}":
            got.problems.append(f"Body holds {[o.tag for o in ops]}, not one {self.operation}")
            return
        got.document = to_json(ops[0])

    def _check_security(self, got: Received, header: etree._Element, env: str) -> None:
        security = header.find(f"{{{WSSE}}}Security")
        if security is None:
            if self.username is not None:
                got.problems.append("no wsse:Security header")
            return
        must = security.get(f"{{{env}}}mustUnderstand")
        if must not in (("true", "1") if got.version == "1.2" else ("1",)):
            got.problems.append(f"wsse:Security mustUnderstand is {must!r}")
        token = security.find(f"{{{WSSE}}}UsernameToken")
        if token is None:
            got.problems.append("wsse:Security without UsernameToken")
            return
        got.username = token.findtext(f"{{{WSSE}}}Username")
        password = token.find(f"{{{WSSE}}}Password")
        if password is not None:
            got.password = password.text
            if password.get("Type") != PASSWORD_TEXT:
                got.problems.append(f"password Type {password.get('Type')!r} is not PasswordText")

    # ------------------------------------------------------------------ answering

    async def _handle(self, request: web.Request) -> web.Response:
        got = Received(dict(request.headers), await request.read())
        self.received.append(got)
        self._check(got)
        answer = self.answers.pop(0) if self.answers else ("ok",)
        version = got.version or "1.1"
        ctype = "application/soap+xml" if version == "1.2" else "text/xml"
        if got.problems:
            return web.Response(status=400 if version == "1.2" else 500, content_type=ctype,
                                body=fault_xml(version, "soap:Sender" if version == "1.2" else "soap:Client",
                                               "; ".join(got.problems)))
        if self.username is not None and (got.username, got.password) != (self.username, self.password):
            return web.Response(status=500, content_type=ctype, body=fault_xml(
                version, "soap:Sender" if version == "1.2" else "soap:Client", "authentication failed"))
        kind = answer[0]
        if kind == "slow":
            try:
                await asyncio.wait_for(self._released.wait(), answer[1])
            except asyncio.TimeoutError:
                pass
            kind = "ok"
        if kind == "ok":
            return web.Response(content_type=ctype, body=ok_xml(version, self.operation, self.namespace))
        if kind == "empty":
            return web.Response(status=answer[1])
        if kind == "fault":
            opts = answer[3] if len(answer) > 3 else {}
            fault_version = opts.get("version", version)
            reason = answer[2] + (got.body.decode() if opts.get("echo") else "")
            status = opts.get("status", 400 if fault_version == "1.2" and answer[1].endswith("Sender") else 500)
            return web.Response(status=status, content_type=ctype,
                                body=fault_xml(fault_version, answer[1], reason, opts.get("subcode")))
        _, status, body, headers = (*answer, {})[:4]
        return web.Response(status=status, body=body, headers=headers)


# --------------------------------------------------------------------------- a SOAP stack nobody here wrote

class SpyneService:
    """spyne (a real SOAP server) with an XML Schema for the canonical order, on a loopback thread.

    Its lxml validator checks each request against the schema it generates from the types below,
    so an accepted request is one a schema-driven SOAP stack reads. ``fault`` makes the next call
    raise a spyne Fault with that code. Needs ``spyne`` (works on Python 3.11).
    """

    def __init__(self, version: str = "1.1", namespace: str = "urn:test:erp") -> None:
        import threading
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        from spyne import (Application, Array, Boolean, ComplexModel, Fault, Integer, ServiceBase, Unicode,
                           rpc)
        from spyne.protocol.soap import Soap11, Soap12
        from spyne.server.wsgi import WsgiApplication

        self.version = version
        self.received: list[dict[str, Any]] = []
        self.fault: str | None = None
        service = self

        class Model(ComplexModel):
            __namespace__ = namespace

        class Item(Model):
            _type_info = [("gtin", Unicode), ("description", Unicode)]

        class Line(Model):
            _type_info = [("line", Integer), ("item", Item), ("quantity", Unicode), ("unit", Unicode),
                          ("unit_price", Unicode)]

        class Party(Model):
            _type_info = [("id", Unicode), ("scheme", Unicode), ("name", Unicode)]

        class Source(Model):
            _type_info = [(k, Unicode) for k in ("channel", "message_id", "format", "standard", "interchange",
                                                 "message")]

        class Document(Model):
            _type_info = [("number", Unicode), ("issue_date", Unicode),
                          ("requested_delivery_date", Unicode(nillable=True)), ("currency", Unicode),
                          ("buyer", Party), ("lines", Array(Line, member_name="item")), ("urgent", Boolean)]

        class Orders(ServiceBase):
            @rpc(Unicode, Integer, Unicode, Unicode, Unicode, Source, Document, _returns=Unicode,
                 _args=("type", "version", "id", "idempotency_key", "partner", "source", "document"))
            def SubmitDocument(ctx, type, version, id, idempotency_key, partner, source, document):  # noqa: N802
                if service.fault:
                    raise Fault(faultcode=service.fault, faultstring="spyne says no")
                service.received.append({"type": type, "version": version, "id": id, "partner": partner,
                                         "idempotency_key": idempotency_key, "source": source,
                                         "document": document})
                return "accepted"

        protocol = Soap12 if version == "1.2" else Soap11
        app = Application([Orders], tns=namespace, in_protocol=protocol(validator="lxml"), out_protocol=protocol())

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        self._server = make_server("127.0.0.1", 0, WsgiApplication(app), handler_class=Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
