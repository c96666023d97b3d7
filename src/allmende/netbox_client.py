"""A small NetBox REST client: paginated reads, bulk writes, errors that name the object."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

BULK = 200
WRITERS = 3  # bulk chunks sent in parallel (NetBox saves objects one by one server-side)


class NetboxApiError(RuntimeError):
    pass


def auth_header(token: str) -> dict[str, str]:
    """v2 tokens (nbt_<key>.<secret>) use Bearer, legacy v1 tokens use Token."""
    scheme = "Bearer" if token.startswith("nbt_") else "Token"
    return {"Authorization": f"{scheme} {token}"}


@dataclass
class NetboxClient:
    url: str
    token: str
    timeout: float = 600

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({**auth_header(self.token), "Accept": "application/json"})

    @classmethod
    def from_env(cls, env_file: Path | None = None) -> NetboxClient:
        """NETBOX_API/NETBOX_TOKEN from the environment, else from the local NetBox's env file."""
        url, token = os.environ.get("NETBOX_API"), os.environ.get("NETBOX_TOKEN")
        if not (url and token) and env_file and env_file.exists():
            values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
            url, token = url or values.get("NETBOX_API"), token or values.get("NETBOX_TOKEN")
        if not (url and token):
            raise NetboxApiError("no NetBox: set NETBOX_API and NETBOX_TOKEN, or run `allmende netbox up`")
        return cls(url, token)

    def _check(self, resp: requests.Response, what: str) -> Any:
        if resp.status_code >= 400:
            try:
                detail = resp.json()
            except ValueError:
                detail = resp.text[:500]
            text = str(detail)
            raise NetboxApiError(f"{what}: HTTP {resp.status_code}: {text[:600]}{'...' if len(text) > 600 else ''}")
        return resp.json() if resp.content else None

    def list(self, endpoint: str, **params: Any) -> Iterator[dict[str, Any]]:
        params = {"limit": 1000, **params}
        url: str | None = f"{self.url}/api/{endpoint.strip('/')}/"
        while url:
            data = self._check(self.session.get(url, params=params, timeout=self.timeout), f"GET {endpoint}")
            yield from data["results"]
            url, params = data.get("next"), {}

    def _chunks(
        self, method: Callable[..., requests.Response], endpoint: str, objects: list[dict[str, Any]], what: str
    ) -> list[dict[str, Any]]:
        url = f"{self.url}/api/{endpoint.strip('/')}/"
        chunks = [objects[i : i + BULK] for i in range(0, len(objects), BULK)]

        def send(chunk: list[dict[str, Any]]) -> Any:
            return self._check(method(url, json=chunk, timeout=self.timeout), f"{what} {len(chunk)} {endpoint}")

        if len(chunks) <= 1:
            return [obj for chunk in chunks for obj in send(chunk) or []]
        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            return [obj for result in pool.map(send, chunks) for obj in result or []]

    def create(self, endpoint: str, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Bulk create; returns the created objects in the order given."""
        return self._chunks(self.session.post, endpoint, objects, "create")

    def update(self, endpoint: str, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Bulk PATCH; each change carries the object's id."""
        return self._chunks(self.session.patch, endpoint, changes, "update")

    def delete(self, endpoint: str, ids: list[int]) -> None:
        self._chunks(self.session.delete, endpoint, [{"id": i} for i in ids], "delete")
