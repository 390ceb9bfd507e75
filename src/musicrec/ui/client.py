"""The UI's only way to the service: HTTP calls to the API, errors as readable messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from musicrec.config import Settings


class ApiError(Exception):
    """The API could not be reached, or answered with an error; the message says which."""


@dataclass
class ApiClient:
    base_url: str
    api_key: str | None = None
    timeout: float = 15.0

    @classmethod
    def from_env(cls) -> ApiClient:
        """Base URL from MUSICREC_API_URL, key from MUSICREC_API_KEY (both optional).

        Read afresh on every page run (not the cached process settings), so a changed
        environment takes effect without restarting the UI."""
        settings = Settings()
        key = settings.api_key.get_secret_value() if settings.api_key else None
        return cls(settings.api_url.rstrip("/"), key or None)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        try:
            response = httpx.request(
                method,
                f"{self.base_url}{path}",
                headers=headers,
                timeout=self.timeout,
                **kwargs,
            )
        except httpx.TimeoutException:
            raise ApiError(
                f"the API at {self.base_url} did not answer within {self.timeout:.0f} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the API at {self.base_url} ({type(exc).__name__}); "
                "is it running? (`make run` starts it)"
            ) from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(f"{method} {path} failed ({response.status_code}): {detail}")
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def health(self) -> dict[str, Any]:
        # /health answers 503 with a body when degraded: still useful to show.
        try:
            response = httpx.get(f"{self.base_url}/health", timeout=self.timeout)
            return dict(response.json())
        except (httpx.HTTPError, ValueError):
            raise ApiError(
                f"cannot reach the API at {self.base_url}; is it running? (`make run` starts it)"
            ) from None

    def models(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/models"))

    def fit(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._request("POST", "/fit", json=body))

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/jobs/{job_id}"))

    def set_active(self, model_id: str) -> dict[str, Any]:
        return dict(self._request("POST", "/set", params={"model_id": model_id}))

    def predict(
        self, n: int, user_id: int | None = None, msno: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"n": n, "details": True}
        if msno:
            params["msno"] = msno
        else:
            params["user_id"] = user_id
        return dict(self._request("POST", "/predict", params=params))

    def recommend(self, songs: list[str], n: int) -> dict[str, Any]:
        return dict(
            self._request("POST", "/recommend", json={"songs": songs, "n": n, "details": True})
        )

    def users(self, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return dict(self._request("GET", "/users", params={"limit": limit, "offset": offset}))

    def history(self, user_id: int, limit: int = 20) -> list[str]:
        return list(self._request("GET", f"/users/{user_id}/history", params={"limit": limit}))

    def datasets(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/datasets"))

    def log_events(self, dataset: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(
            self._request("POST", "/interactions", json={"dataset": dataset, "events": events})
        )

    def federate(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._request("POST", "/federate", json=body))
