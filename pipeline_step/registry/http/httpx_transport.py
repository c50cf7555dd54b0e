"""The httpx transport: used when an HTTP proxy applies (the lean transport does not speak
to proxies). httpx is imported only when this transport is chosen: it is heavy to import.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from pipeline_step.registry.http.transport import (
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
    ) -> Response:
        import httpx  # noqa: PLC0415 - already loaded by __post_init__; a dictionary lookup

        try:
            response = self._client.request(
                method, url, headers=dict(headers), content=content, follow_redirects=follow_redirects
            )
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
        return Response(response.status_code, headers_out, response.content, str(response.url))

    def close(self) -> None:
        self._client.close()
