"""A minimal Prometheus HTTP API client (`GET /api/v1/query`): one instant query → one number.

The canary gates only need scalars (an error rate, a p95, a score), so this reads the first sample of a
vector or a scalar result; no result at all (no traffic yet, metric absent) is `None`, never 0.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request

from codesense_ray.errors import CodesenseError, PrometheusError  # noqa: F401




class PrometheusClient:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, promql: str) -> float | None:
        """The value of an instant query; None when the result is empty or NaN."""
        body = urllib.parse.urlencode({"query": promql}).encode()
        request = urllib.request.Request(f"{self.url}/api/v1/query", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("error") or err.reason
            except ValueError:
                message = err.reason
            raise PrometheusError(f"Prometheus at {self.url} refused the query ({err.code}): {message}") from None
        except (urllib.error.URLError, OSError) as err:
            raise PrometheusError(f"Prometheus at {self.url} is unreachable: {getattr(err, 'reason', err)}") from None
        if payload.get("status") != "success":
            raise PrometheusError(f"Prometheus query failed: {payload.get('error') or payload}")
        data = payload.get("data") or {}
        result = data.get("result")
        if data.get("resultType") == "scalar":
            value = result[1] if result else None
        elif result:
            value = result[0]["value"][1]
        else:
            return None
        number = float(value)
        return None if math.isnan(number) else number
