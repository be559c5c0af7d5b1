"""SOAP calls from the ``http`` sink against a real SOAP endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from lxml import etree
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dovetail.connectors.http.sink import HttpSinkConfig
from dovetail.connectors.http.source import bind_listener
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.errors import ConfigError, PermanentError, TransientError
from dovetail.testing.components import build_component

TNS = "urn:example:orders"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

WSDL = f"""<?xml version="1.0" encoding="utf-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="{TNS}" targetNamespace="{TNS}" name="Orders">
  <types>
    <xsd:schema targetNamespace="{TNS}" elementFormDefault="qualified">
      <xsd:element name="CreateOrder">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="orderId" type="xsd:string"/>
          <xsd:element name="total" type="xsd:decimal"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:element name="CreateOrderResponse">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="status" type="xsd:string"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
    </xsd:schema>
  </types>
  <message name="CreateOrderIn"><part name="parameters" element="tns:CreateOrder"/></message>
  <message name="CreateOrderOut">
    <part name="parameters" element="tns:CreateOrderResponse"/>
  </message>
  <portType name="OrdersPort">
    <operation name="CreateOrder">
      <input message="tns:CreateOrderIn"/><output message="tns:CreateOrderOut"/>
    </operation>
  </portType>
  <binding name="OrdersBinding" type="tns:OrdersPort">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="CreateOrder">
      <soap:operation soapAction="{TNS}#CreateOrder"/>
      <input><soap:body use="literal"/></input><output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="OrdersService">
    <port name="OrdersSoap" binding="tns:OrdersBinding">
      <soap:address location="http://127.0.0.1:1/not-used"/>
    </port>
  </service>
</definitions>
"""


def _envelope(body: str) -> str:
    return (
        f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:o="{TNS}">'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    )


def _fault(code: str, text: str) -> str:
    return _envelope(
        f"<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{text}</faultstring>"
        "</soap:Fault>"
    )


@dataclass
class SoapEndpoint:
    """The SOAP service in a background thread; records each call's headers and fields."""

    port: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/orders"

    async def _wsdl(self, request: Request) -> Response:
        return Response(WSDL, media_type="text/xml")

    async def _call(self, request: Request) -> Response:
        root = etree.fromstring(await request.body())
        order = root.find(f"{{{SOAP_ENV}}}Body/{{{TNS}}}CreateOrder")
        assert order is not None
        fields = {etree.QName(child).localname: child.text for child in order}
        self.calls.append({"headers": dict(request.headers), "fields": fields})
        order_id = fields.get("orderId")
        if order_id == "busy":
            fault = _fault("Server", "Server busy, try again later")
            return Response(fault, status_code=500, media_type="text/xml")
        if order_id == "bad":
            fault = _fault("Client", "Unknown customer")
            return Response(fault, status_code=500, media_type="text/xml")
        if order_id == "boom":
            return Response("Internal Server Error", status_code=500, media_type="text/plain")
        ok = _envelope(
            "<o:CreateOrderResponse><o:status>accepted</o:status></o:CreateOrderResponse>"
        )
        return Response(ok, media_type="text/xml")


@pytest.fixture
def endpoint() -> Iterator[SoapEndpoint]:
    """Serve the WSDL at ``/orders?wsdl`` and the operation at ``/orders``."""
    state = SoapEndpoint()

    async def route(request: Request) -> Response:
        if request.method == "GET":
            return await state._wsdl(request)
        return await state._call(request)

    app = Starlette(routes=[Route("/orders", route, methods=["GET", "POST"])])
    sock = bind_listener("127.0.0.1", 0)
    state.port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="soap", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "SOAP endpoint did not start"
        time.sleep(0.01)
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def message(payload: Any) -> Envelope:
    return Envelope(payload=payload, settlement=Settlement(), correlation_id=TRACE_ID)


def soap_sink(endpoint: SoapEndpoint, project: Path, wsdl: str | None = None) -> Any:
    snippet = (
        f"http:\n  url: {endpoint.url}\n"
        f"  soap: {{wsdl: '{wsdl or endpoint.url + '?wsdl'}', operation: CreateOrder}}\n"
    )
    return build_component("sink", snippet, project)


async def deliver(sink: Any, *payloads: Any) -> list[BaseException | None]:
    await sink.open()
    try:
        results: list[BaseException | None] = await sink.write([message(p) for p in payloads])
        return results
    finally:
        await sink.close()


def test_a_soap_call_sends_the_payload_as_operation_parameters_with_trace_headers(
    endpoint: SoapEndpoint, tmp_path: Path
) -> None:
    (tmp_path / "orders.wsdl").write_text(WSDL)
    for wsdl in (None, "orders.wsdl"):  # from the service's URL, then from a project file
        sink = soap_sink(endpoint, tmp_path, wsdl)
        assert asyncio.run(deliver(sink, {"orderId": "A-1", "total": "12.50"})) == [None]
    assert [call["fields"] for call in endpoint.calls] == [{"orderId": "A-1", "total": "12.50"}] * 2
    headers = endpoint.calls[0]["headers"]
    assert headers["soapaction"] == f'"{TNS}#CreateOrder"'
    assert headers["content-type"].startswith("text/xml")
    assert headers["x-correlation-id"] == TRACE_ID
    assert headers["traceparent"].startswith(f"00-{TRACE_ID}-")


def test_a_soap_fault_is_permanent_unless_it_says_the_server_is_busy(
    endpoint: SoapEndpoint, tmp_path: Path
) -> None:
    sink = soap_sink(endpoint, tmp_path)
    bad, busy = asyncio.run(
        deliver(sink, {"orderId": "bad", "total": 1}, {"orderId": "busy", "total": 1})
    )
    assert isinstance(bad, PermanentError)
    assert bad.reason == "SOAP Fault from CreateOrder: Client: Unknown customer"
    assert isinstance(busy, TransientError)
    assert "Server busy" in busy.reason


def test_http_500_without_a_fault_is_retried(endpoint: SoapEndpoint, tmp_path: Path) -> None:
    sink = soap_sink(endpoint, tmp_path)
    [result] = asyncio.run(deliver(sink, {"orderId": "boom", "total": 1}))
    assert isinstance(result, TransientError)
    assert "500" in result.reason


def test_a_payload_that_does_not_fit_the_operation_is_dead_lettered_unsent(
    endpoint: SoapEndpoint, tmp_path: Path
) -> None:
    sink = soap_sink(endpoint, tmp_path)
    results = asyncio.run(
        deliver(
            sink,
            {"orderId": "A-2", "colour": "red"},  # a field the operation does not have
            {"orderId": "A-3"},  # a required field missing
            ["not", "an", "object"],
        )
    )
    assert [type(result) for result in results] == [PermanentError] * 3
    assert endpoint.calls == []


def test_an_unknown_operation_fails_when_the_sink_opens(
    endpoint: SoapEndpoint, tmp_path: Path
) -> None:
    snippet = (
        f"http: {{url: '{endpoint.url}', soap: {{wsdl: '{endpoint.url}?wsdl', operation: Nope}}}}"
    )
    sink = build_component("sink", snippet, tmp_path)
    with pytest.raises(ConfigError, match="no operation 'Nope'; found \\['CreateOrder'\\]"):
        asyncio.run(sink.open())


def test_soap_config_checks() -> None:
    base = {"url": "https://erp.example/soap", "soap": {"wsdl": "x.wsdl", "operation": "Op"}}
    with pytest.raises(ValidationError, match="POSTed"):
        HttpSinkConfig.model_validate({**base, "method": "PUT"})
    with pytest.raises(ValidationError, match="file not found"):
        HttpSinkConfig.model_validate(base, context={"project_dir": Path("/nonexistent")})
