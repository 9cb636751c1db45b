"""HTTP layer: schemas, error mapping, middleware and dependencies (routes live in service.routes)."""
