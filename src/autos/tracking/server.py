"""A remote tracking server that does not serve requests fails in seconds with one line, not minutes of retries."""

from __future__ import annotations

import os

from autos.tracking.store import TrackingError

PROBE_TIMEOUT_S = 5.0

__all__ = ["PROBE_TIMEOUT_S", "TrackingError", "probe_server"]


def _short_reason(exc: BaseException) -> str:
    """The innermost OS-level reason ('Connection refused'), not urllib3's multi-line retry summary."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        current = current.__cause__ or current.__context__
    return type(exc).__name__


def probe_server(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise TrackingError unless the http(s) tracking server at ``uri`` serves ``/health`` within ``timeout`` s.

    MLflow's own client retries an unreachable or failing server for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
    default 7, with backoff: ~4 min) and then fails with a long traceback; one short request without retries tells
    the user at once. An answer below 500 counts (a 401 or 404 still means the server is there: MLflow reports
    those itself); a 5xx (a proxy's 502/503/504, a server that is starting or overloaded) does not. TLS is verified
    the way MLflow does it.
    """
    import requests

    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true"):
        verify: bool | str = False
    else:
        verify = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    url = uri.rstrip("/") + "/health"
    try:
        response = requests.get(url, timeout=timeout, verify=verify, allow_redirects=False)
        response.close()
    except requests.Timeout:
        reason = f"no answer within {timeout:g} s"
    except requests.RequestException as exc:
        reason = _short_reason(exc)
    else:
        if response.status_code < 500:
            return
        reason = f"it answers HTTP {response.status_code}"
    raise TrackingError(
        f"MLflow tracking server {uri} is unavailable ({reason}): start or fix the server, or unset "
        "MLFLOW_TRACKING_URI to log to the local SQLite store, or set tracking.enabled: false in the params file."
    )
