"""Routes, one module per resource. Each route parses, calls one service method, serialises."""

from . import exports, generation, models, operations, permissions, tuned_models

# Included under every API version prefix (/v1beta, /v1beta3, /v1).
# exports first: GET /tunedModels/ID:export must not be taken for GET /tunedModels/{id}.
ROUTERS = [
    exports.router,
    tuned_models.router,
    operations.router,
    permissions.router,
    generation.router,
    models.router,
]

__all__ = ["ROUTERS"]
