"""Conveyor's HTTP service: a FastAPI app over the embedded engine or Temporal (`Settings.backend`).

service = Service.create(db_path="conveyor.db")
app = create_app(service)   # serve with uvicorn; the app starts and stops the service
"""

from conveyor.api.app import create_app
from conveyor.api.service import AuthConfig, Service

__all__ = ["AuthConfig", "Service", "create_app"]
