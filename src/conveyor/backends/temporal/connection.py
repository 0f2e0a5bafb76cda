"""Connecting to a Temporal cluster as the settings say: address, namespace, TLS, API key.

One function for the client side (`TemporalBackend`, so `conveyor serve` and the synchronous
NOMAD functions too) and the workers. A failed connection raises `TemporalConnectionError`
whose message is one line saying what is wrong and which setting fixes it, rather than the
Temporal core's nested transport error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.service import TLSConfig

from conveyor.config import Settings
from conveyor.errors import ConfigurationError

__all__ = ["TemporalConnectionError", "connect", "connect_failure", "describe", "tls_config"]


class TemporalConnectionError(ConfigurationError):
    """The cluster could not be reached or refused the connection; the message says why."""


def tls_config(settings: Settings) -> TLSConfig | bool:
    """The TLS configuration the settings ask for (False: plain gRPC).

    Raises:
        ConfigurationError: a certificate or key file cannot be read (the setting named).
    """
    wanted = settings.temporal_tls
    if wanted is None:
        wanted = any(
            value is not None
            for value in (
                settings.temporal_tls_ca_path,
                settings.temporal_tls_cert_path,
                settings.temporal_api_key,
            )
        )
    if not wanted:
        return False
    return TLSConfig(
        server_root_ca_cert=_read(settings.temporal_tls_ca_path, "temporal_tls_ca_path"),
        client_cert=_read(settings.temporal_tls_cert_path, "temporal_tls_cert_path"),
        client_private_key=_read(settings.temporal_tls_key_path, "temporal_tls_key_path"),
        domain=settings.temporal_tls_server_name,
    )


def _read(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{_env(setting)}: cannot read {path}: {exc.strerror or exc}"
        ) from None


def describe(settings: Settings) -> str:
    """How the settings connect, for a startup banner: ``plain gRPC``, ``TLS``, ``mTLS``...
    (file names and the server name, never the API key)."""
    tls = tls_config(settings)
    if tls is False:
        return "plain gRPC"
    parts = ["mTLS" if settings.temporal_tls_cert_path is not None else "TLS"]
    if settings.temporal_tls_ca_path is not None:
        parts.append(f"CA {settings.temporal_tls_ca_path}")
    if settings.temporal_tls_server_name is not None:
        parts.append(f"server name {settings.temporal_tls_server_name}")
    if settings.temporal_api_key is not None:
        parts.append("API key")
    return ", ".join(parts)


async def connect(settings: Settings, **options: Any) -> Client:
    """A client of the cluster and namespace of `settings`, over TLS and with the API key
    when they are set; `options` go to `Client.connect` (a data converter, say).

    Raises:
        ConfigurationError: a certificate or key file cannot be read.
        TemporalConnectionError: the cluster cannot be reached or refused the connection.
    """
    tls = tls_config(settings)
    api_key = settings.temporal_api_key
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            tls=tls,
            api_key=api_key.get_secret_value() if api_key is not None else None,
            **options,
        )
    except Exception as exc:  # noqa: BLE001 - the core raises RuntimeError with nested text
        raise TemporalConnectionError(
            f"cannot connect to Temporal at {settings.temporal_address}: "
            f"{connect_failure(exc, settings)}"
        ) from None


def connect_failure(exc: BaseException, settings: Settings) -> str:
    """Why a connection failed, in one line naming the setting that fixes it."""
    text = str(exc)
    tls = tls_config(settings) is not False
    if "UnknownIssuer" in text or "BadSignature" in text:
        trusted = (
            f"the CA in {_env('temporal_tls_ca_path')} ({settings.temporal_tls_ca_path})"
            if settings.temporal_tls_ca_path is not None
            else f"the system's CAs (set {_env('temporal_tls_ca_path')})"
        )
        return f"the server's certificate is not signed by {trusted}"
    if "NotValidForName" in text:
        presented = re.findall(r'DnsName\(\\?"([^"\\]+)', text)
        names = ", ".join(presented) or "other names"
        return (
            f"the server's certificate is for {names}, not for the host dialled: "
            f"set {_env('temporal_tls_server_name')} to the name it is for"
        )
    if "InvalidContentType" in text or "WrongVersion" in text.replace(" ", ""):
        return f"the server does not speak TLS: set {_env('temporal_tls')}=false"
    if tls and _closed_after_handshake(text):
        # TLS 1.3 checks the client's certificate after the client thinks it is connected:
        # the refusal reaches it as a closed connection (EOF, broken pipe or cancelled call).
        if settings.temporal_tls_cert_path is None:
            return (
                "the server closed the TLS connection after the handshake, as a server that "
                f"requires a client certificate does (set {_env('temporal_tls_cert_path')} "
                f"and {_env('temporal_tls_key_path')})"
            )
        return (
            "the server closed the TLS connection after the handshake: it refused the client "
            f"certificate in {_env('temporal_tls_cert_path')} "
            f"({settings.temporal_tls_cert_path})"
        )
    if not tls and _closed(text):
        # A TLS frontend drops a plain HTTP/2 preface; the client sees a broken pipe or, when
        # the drop lands mid-call, a cancelled operation.
        return (
            "the server closed the connection: if it serves TLS, set "
            f"{_env('temporal_tls')}=true (and {_env('temporal_tls_ca_path')})"
        )
    found = re.search(r'message: "([^"]+)"', text)
    if found and found.group(1) != "transport error":
        return found.group(1).lower()
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _closed_after_handshake(text: str) -> bool:
    if "CertificateRequired" in text:
        return True
    return "after connection" in text.lower() and _closed(text)


def _closed(text: str) -> bool:
    """Whether the error reads as the peer closing the connection."""
    lowered = text.lower()
    signs = ("close_notify", "brokenpipe", "broken pipe", "operation was canceled", "reset")
    return any(sign in lowered for sign in signs)


def _env(setting: str) -> str:
    return f"CONVEYOR_{setting.upper()}"
