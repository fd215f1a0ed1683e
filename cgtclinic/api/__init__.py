"""API primitives shared by every app: role permissions, pagination, domain-error responses."""
