"""The httpx transport: used when an HTTP proxy applies (the lean transport does not speak
to proxies). httpx is imported only when this transport is chosen: it is heavy to import.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from pipeline_step.registry.http.transport import (
    BodyTooLargeError,
    BrokenResponseError,
    ConnectFailedError,
    Response,
    TimedOutError,
    TLSFailedError,
    TLSSettings,
)

if TYPE_CHECKING:
    import httpx


def _is_tls_failure(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLError):
            return True
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in type(exc).__name__


@dataclass
class HttpxTransport:
    """httpx with a keep-alive pool sized to the client's concurrency."""

    tls: TLSSettings = field(default_factory=TLSSettings)
    timeout: float = 30.0
    max_connections: int = 8
    _client: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import httpx  # noqa: PLC0415 - see the module docstring

        self._client = httpx.Client(
            verify=self.tls.context(),
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
            ),
            follow_redirects=False,
        )

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None = None,
        *,
        follow_redirects: bool = False,
        max_body: int | None = None,
    ) -> Response:
        import httpx  # noqa: PLC0415 - already loaded by __post_init__; a dictionary lookup

        try:
            request = self._client.build_request(method, url, headers=dict(headers), content=content)
            response = self._client.send(request, follow_redirects=follow_redirects, stream=True)
            try:
                body = _read_limited(response, max_body)
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            raise TimedOutError(f"timed out after {self.timeout:g}s") from exc
        except httpx.ConnectError as exc:
            if _is_tls_failure(exc):
                raise TLSFailedError(str(exc)) from exc
            raise ConnectFailedError(str(exc) or type(exc).__name__) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise BrokenResponseError(str(exc) or type(exc).__name__) from exc
        except httpx.TransportError as exc:
            raise BrokenResponseError(str(exc) or type(exc).__name__) from exc
        headers_out: dict[str, str] = {}
        for raw_key, raw_value in response.headers.raw:
            # Latin-1, byte for byte, as the lean transport decodes (httpx would guess UTF-8 for the whole set).
            lowered = raw_key.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers_out[lowered] = f"{headers_out[lowered]}, {value}" if lowered in headers_out else value
        return Response(response.status_code, headers_out, body, str(response.url))

    def close(self) -> None:
        self._client.close()


def _read_limited(response: httpx.Response, max_body: int | None) -> bytes:
    """The body, refusing (unread) one longer than ``max_body``."""
    if max_body is None:
        return response.read()
    announced = response.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > max_body:
        raise BodyTooLargeError(f"the answer announces {announced} bytes, more than the {max_body} allowed")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_body:
            raise BodyTooLargeError(f"the answer is longer than the {max_body} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)
