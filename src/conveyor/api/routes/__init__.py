"""The service's routes, one module a concern, each exposing `router: APIRouter`.

`conveyor.api.app.ROUTERS` lists the modules the app includes, in order.
"""
