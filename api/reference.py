"""The API reference in the console (``/api-reference/``): the OpenAPI document the API serves,
rendered on the server as a page of the console (its own CSS only: no CDN, no script). Behind
the console's staff gate like every console page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

METHODS = ("get", "post", "put", "patch", "delete")


def _ref_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else ""


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return _ref_name(schema)
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    return str(schema.get("type", "any"))


def sections(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Operations grouped by tag, in the document's order, with parameters, body and answers."""
    components = document.get("components", {}).get("schemas", {})
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            name = _ref_name(body)
            component = components.get(name, {})
            fields = [{"name": key, "type": _type(value), "required": key in component.get("required", [])}
                      for key, value in component.get("properties", {}).items()]
            groups.setdefault((op.get("tags") or ["other"])[0], []).append({
                "method": method.upper(), "path": path, "id": op.get("operationId", ""),
                "summary": op.get("summary", ""), "description": op.get("description", ""),
                "parameters": [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                                "type": _type(p.get("schema", {}))} for p in op.get("parameters", [])],
                "body": name, "fields": fields,
                "responses": sorted(str(code) for code in op.get("responses", {})),
            })
    return [{"tag": tag, "operations": ops} for tag, ops in groups.items()]


@require_GET
def reference_page(request: HttpRequest) -> HttpResponse:
    from api.urls import api

    document = api.get_openapi_schema()
    return render(request, "api/reference.html", {"doc": document, "sections": sections(document)})
