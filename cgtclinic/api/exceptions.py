from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from cgtclinic.errors import Conflict, DomainError


def exception_handler(exc, context):
    """Domain errors become 400 (bad input), 403 (not allowed) or 409 (clashes with the record's state), with a
    translated message."""
    if isinstance(exc, DomainError):
        if isinstance(exc, Conflict):
            code = status.HTTP_409_CONFLICT
        elif exc.code == "permission_denied":
            code = status.HTTP_403_FORBIDDEN
        else:
            code = status.HTTP_400_BAD_REQUEST
        body = {"detail": str(exc.message), "code": exc.code}
        if exc.field:
            body["field"] = exc.field
        return Response(body, status=code)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        # A ValidationError raised with a bare list (django-filter's, a serializer's non-dict input) would answer a
        # JSON array; every error body is an object.
        response.data = {"detail": " ".join(str(item) for item in response.data), "code": "invalid"}
    return response
