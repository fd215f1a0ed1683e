"""OpenAPI post-processing: the answers every operation can give, documented once instead of per view.

drf-spectacular documents what each view declares. Some answers come from the framework for every operation of a
kind: 404 for an id outside the caller's scope or a page past the end of a list, 401 and 403 from
authentication and permissions. Without them in the schema a client (or schemathesis) meets answers the contract
does not mention."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR_SCHEMA = "FrameworkError"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """cgtclinic.auth.ApiTokenAuthentication in the schema: the same "tokenAuth" header as before hashing."""

    target_class = "cgtclinic.auth.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'A key issued by a system administrator, with the prefix "Token": `Token <key>`.',
        }


DESCRIPTIONS = {
    "400": "A parameter was refused: messages per parameter, or detail and code.",
    "401": "Not signed in: no or an invalid token.",
    "403": "Signed in, but this role may not do this.",
    "404": "No such record in the caller's scope, or a page past the end of the list.",
}


def _is_list_or_detail(path: str, operation: dict) -> bool:
    parameters = operation.get("parameters", [])
    return "{" in path or any(parameter.get("name") == "page" for parameter in parameters)


def document_framework_errors(result, generator, request, public):
    """Add the framework's 401/403 (authenticated operations) and 404 (records and pages) where a view left them out."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        ERROR_SCHEMA,
        {
            "type": "object",
            "description": "An error answered by the framework or a business rule.",
            "properties": {
                "detail": {"type": "string"},
                "code": {"type": "string"},
                "field": {"type": "string", "nullable": True},
            },
            "required": ["detail"],
        },
    )
    body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    # A refused parameter answers either the framework's error or DRF's messages per parameter.
    refusal = {"application/json": {"schema": {"type": "object", "additionalProperties": {}}}}
    for path, methods in result.get("paths", {}).items():
        for operation in methods.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            wanted = []
            if operation.get("security") != [{}] and any(operation.get("security") or [{"tokenAuth": []}]):
                wanted += ["401", "403"]
            if _is_list_or_detail(path, operation):
                wanted.append("404")
            if any(parameter.get("in") == "query" for parameter in operation.get("parameters", [])):
                wanted.append("400")
            for code in wanted:
                responses.setdefault(
                    code, {"content": body if code != "400" else refusal, "description": DESCRIPTIONS[code]}
                )
    return result
