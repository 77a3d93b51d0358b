"""A plausible instance of a JSON Schema, for the AsyncAPI document's message examples.

Made from the model's *validation* schema, then validated by the model itself (and serialized
by it), so an example is always a message the consumers would accept. Every branch picks the
first choice the schema offers: `const`, `default`, the first `enum` value, the first non-null
`anyOf`/`oneOf` branch, the smallest number allowed, one array item (or `minItems`).
Hand-written because it is small and the schemas are pydantic's own; example generators from
JSON Schema libraries pull in far more (random data, formats we do not use).
"""

from __future__ import annotations

from typing import Any

_FORMATS = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "uuid": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}


def example_of(schema: dict[str, Any]) -> Any:
    """An instance of `schema` (a pydantic JSON Schema with its `$defs`)."""
    return _make(schema, schema.get("$defs", {}), "value")


def _make(schema: dict[str, Any], defs: dict[str, Any], name: str) -> Any:
    if "$ref" in schema:
        return _make(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, name)
    for keyword in ("const", "default"):
        if keyword in schema:
            return schema[keyword]
    if "enum" in schema:
        return schema["enum"][0]
    for keyword in ("anyOf", "oneOf", "allOf"):
        if keyword in schema:
            choices = [choice for choice in schema[keyword] if choice.get("type") != "null"]
            return _make(choices[0] if choices else schema[keyword][0], defs, name)
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {prop: _make(sub, defs, prop) for prop, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        items = schema.get("prefixItems") or [schema.get("items", {})] * count
        return [_make(item, defs, name) for item in items]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in schema else 1)
        return max(1, low) if "maximum" not in schema else min(max(1, low), schema["maximum"])
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if "format" in schema and schema["format"] in _FORMATS:
        return _FORMATS[schema["format"]]
    return f"{name}-1"[: schema.get("maxLength", 64)]
